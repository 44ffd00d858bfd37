#!/usr/bin/env python3
"""A page to type a+b into: the model's sum, how it wrote it, and where each layer and head looked.

  python3 app.py                                  (the trained model in ./model, on http://127.0.0.1:7860)
  python3 app.py --model user/name                (a model on the Hugging Face Hub)
  python3 app.py --model runs/anylength/model --port 8000

The same file runs as a Hugging Face Space (docs/demo.md; `python -m hexadd.hub push-space`).
"""
import asyncio
import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hexadd.common import cli
from hexadd.common.errors import HexaddError
from hexadd.data.numbers import is_hex_problem, num_digits, parse_decimal_problem, show

# Nothing calls home: the page is served where no outside host may be reachable.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

QUEUE = 64       # requests waiting at once; one more is turned away at once instead of waiting behind them
SESSIONS = 128   # visitors whose last outputs the server keeps (Gradio's default, 10,000, holds each one's figure)
LONGEST = 1_000  # operand digits (in the model's base) answered here: about 2 s of decoding on one core (bench/demo.py)
DRAWN = 80       # tokens in the longest problem whose attention is drawn: beyond it the labels run together
# The first four this model answers are offered: a carry through every digit, hex in and out, a long one.
EXAMPLES = ["1234+5678", "0xFFFF+0x1", "0x" + "F" * 32 + "+0x1", "99+1", "12+34", "0x3F+0x1"]


class Adder:
    """One model, loaded once, answering what is typed into the page. Threads share it: nothing here mutates it."""

    def __init__(self, model: str, revision: str | None = None):
        from transformers.utils import logging
        logging.disable_progress_bar()
        from hexadd.inference.decoding import default_mode
        from hexadd.inference.loading import load_model, resolve

        self.path = resolve(model, revision)
        self.name = model
        self.model, self.tok = load_model(str(self.path))
        self.mode = default_mode(self.model)
        self.results = results_section(self.path, model)
        self.attention_image(self.examples()[-1])  # the first visitor does not wait for torch and matplotlib to warm up

    def problem(self, text: str) -> tuple[int, int, bool]:
        """(a, b, written in hex) of a problem this model answers here; HexaddError with the CLI's message if not."""
        from hexadd.inference.decoding import check_fits
        try:
            a, b = parse_decimal_problem(text or "")
        except ValueError as e:
            raise HexaddError(str(e)) from None
        c = self.model.config
        if not c.windowed and not (c.min_operand <= min(a, b) and max(a, b) <= c.max_operand):
            raise HexaddError(f"{a}+{b}: this model was trained on operands {c.min_operand}..{c.max_operand}")
        longest = max(num_digits(a, c.base), num_digits(b, c.base))
        if longest > LONGEST:
            raise HexaddError(f"an operand of {longest:,} base-{c.base} digits: this page answers up to {LONGEST:,} "
                              "(inference.py answers longer ones)")
        try:
            check_fits(self.model, a, b)
        except ValueError as e:
            raise HexaddError(str(e)) from None
        return a, b, is_hex_problem(text)

    def answer(self, text: str) -> tuple[str, str]:
        """(a+b=sum as inference.py prints it, how the model got there), or (error: why, "")."""
        from hexadd.inference.decoding import decode
        try:
            a, b, h = self.problem(text)
        except HexaddError as e:
            return f"error: {e}", ""
        ans = decode(self.model, self.tok, [(a, b)], self.mode)[0]
        c = self.model.config
        shown = f"{show(a, h)}+{show(b, h)}={'?' if ans.value is None else show(ans.value, h)}"
        check = ans.note or ("right" if ans.value == a + b else f"wrong: the sum is {show(a + b, h)}")
        passes = f"{ans.passes} forward pass{'es' if ans.passes != 1 else ''}"
        how = (f"the model wrote {ans.text} (base {c.base}, least significant digit first); {check}; "
               f"{self.mode} decoding, {passes}")
        if self.tokens(a, b) > DRAWN:
            how += f"; attention is drawn for problems of up to {DRAWN} tokens"
        return shown, how

    def attention(self, text: str):
        """Every layer and head's attention over the problem and the model's answer; None when there is none to draw."""
        from hexadd.inference.attention import problem_figure
        try:
            a, b, _ = self.problem(text)
        except HexaddError:
            return None
        if self.tokens(a, b) > DRAWN:
            return None
        return problem_figure(self.model, self.tok, a, b)[1]  # plain greedy: the same answer every mode writes

    def attention_image(self, text: str) -> str:
        """attention() as an <img> the page shows as it is: drawn here, in the caller's thread."""
        fig = self.attention(text)
        if fig is None:
            return ""
        with io.BytesIO() as png:
            fig.savefig(png, format="png", dpi=90)
            data = base64.b64encode(png.getvalue()).decode()
        return f'<img src="data:image/png;base64,{data}" alt="attention of every layer and head" style="width: 100%">'

    def tokens(self, a: int, b: int) -> int:
        """Tokens in `+A+B+C+`, the answer at its longest."""
        la, lb = num_digits(a, self.model.config.base), num_digits(b, self.model.config.base)
        return 4 + la + lb + max(la, lb) + 1

    def examples(self) -> list[str]:
        c = self.model.config
        fit = []
        for e in EXAMPLES:
            try:
                self.problem(e)
                fit.append(e)
            except HexaddError:
                pass
        return fit[:4] or [f"{c.max_operand}+{c.min_operand}"]

    def description(self) -> str:
        c = self.model.config
        reach = " (its attention window lets it add numbers of any length)" if c.windowed else ""
        params = sum(p.numel() for p in self.model.parameters())
        return (f"`{self.name}`: a GPT-2 trained from scratch to add integers, on operands {c.min_operand:,}.."
                f"{c.max_operand:,}{reach}. It reads and writes base {c.base}, least significant digit first. "
                f"{params:,} parameters, {c.n_layer} layers, {c.n_head} attention heads, {c.n_predict} prediction "
                f"head{'s' if c.n_predict > 1 else ''}. Type a+b in decimal, or in hexadecimal as 0x1F+0x2.")


def results_section(path: Path, name: str) -> str:
    """The Results section of the model card: the certificate first. A Hub model brings its card; a local
    folder has it built from its certificate.json and evaluations, as a push would."""
    text = None
    card = path / "README.md"
    if card.is_file():
        text = card.read_text()
    elif (path / "certificate.json").is_file() or (path / "eval_results.json").is_file():
        from hexadd.hub.card import model_card
        text = model_card(path, name).text
    if text is None or "## Results" not in text:
        return "No certificate or evaluation was recorded for this model."
    section = text[text.index("## Results") + len("## Results"):]
    return section.split("\n## ", 1)[0].strip()


def build(adder: Adder):
    import gradio as gr

    # The model runs, and figures are drawn, on these threads only: a request a core, each on one thread (small
    # problems are latency-bound). Fixed threads keep memory flat, where Gradio's pool of short-lived ones would
    # leave each new thread's allocator arena and font cache behind.
    workers = os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="model")

    async def add(problem: str) -> tuple[str, str]:
        return await asyncio.wrap_future(pool.submit(adder.answer, problem))

    async def attention(problem: str) -> str:
        return await asyncio.wrap_future(pool.submit(adder.attention_image, problem))

    with gr.Blocks(title="hexadd: a transformer that adds", analytics_enabled=False) as demo:
        gr.Markdown("# hexadd: a transformer that adds\n" + adder.description())
        with gr.Row():
            with gr.Column(scale=2):
                problem = gr.Textbox(label="problem", placeholder="1234+5678", max_lines=1, elem_id="problem")
                button = gr.Button("Add", variant="primary", elem_id="add")
                answer = gr.Textbox(label="answer", interactive=False, elem_id="answer")
                how = gr.Textbox(label="how the model wrote it", interactive=False, lines=2, elem_id="how")
                gr.Examples(adder.examples(), inputs=problem)
            with gr.Column(scale=3):
                gr.Markdown("**Attention** of each layer (rows) and head (columns) over the problem and the model's answer")
                plot = gr.HTML(elem_id="attention")
        with gr.Accordion("certificate and evaluation (from the model card)", open=True):
            gr.Markdown(adder.results, elem_id="results")
        # The sum shows as soon as it is decoded; the figure, which takes longer to draw, follows.
        gr.on([button.click, problem.submit], add, problem, [answer, how], api_name="add",
              concurrency_id="model").then(attention, problem, plot, api_name="attention", concurrency_id="model")
    return demo.queue(max_size=QUEUE, default_concurrency_limit=workers)


def main():
    p = cli.parser(__doc__)
    p.add_argument("--model", default="model", help="local model folder or Hub repo id user/name (default: ./model)")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) when --model is a repo id")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; a Space sets its own)")
    p.add_argument("--port", type=int, help="port (default 7860, or the first free one after it)")
    args = p.parse_args()
    import torch
    torch.set_num_threads(1)  # one thread a request (build)
    adder = Adder(args.model, args.revision)
    import gradio as gr
    font = ["ui-sans-serif", "system-ui", "sans-serif"]  # system fonts: no font host is reachable offline
    build(adder).launch(server_name=args.host, server_port=args.port, footer_links=["api"],
                        state_session_capacity=SESSIONS, run_history=False,  # no copy of each figure in the browser
                        theme=gr.themes.Default(font=font, font_mono=["ui-monospace", "monospace"]))


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
