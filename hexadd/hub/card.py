"""The model card: what the model is, its measured results (certificate first) and how to use it."""
import json
import math
from pathlib import Path

from ..modeling.schemes import SCHEMES
from ..data.numbers import format_problem, format_prompt, num_digits


def model_card(model_dir: Path, repo_id: str):
    """A ModelCard whose model-index holds the held-out exact match measured after training."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    config = json.loads((model_dir / "config.json").read_text())
    ev_path = model_dir / "eval_results.json"
    ev = json.loads(ev_path.read_text()) if ev_path.is_file() else None
    base, lo, hi = config["base"], config["min_operand"], config["max_operand"]
    dataset = f"held-out {lo}..{hi} addition, base {base}"
    results = []
    if ev:
        common = dict(task_type="text-generation", task_name="Integer addition", dataset_type="hexadd-addition",
                      dataset_name=dataset, metric_type="exact_match")
        results.append(EvalResult(**common, metric_value=ev["accuracy"], metric_name="Exact match (held-out)"))
        for cell in ev["by_length"]:
            results.append(EvalResult(**common, metric_value=cell["correct"] / cell["total"],
                                      metric_name=f"Exact match, {cell['digits_a']}+{cell['digits_b']} digits"))
    cert_path = model_dir / "certificate.json"
    cert = json.loads(cert_path.read_text()) if cert_path.is_file() else None
    if cert:
        how = "every problem" if cert["exhaustive"] else f"{cert['n']:,} problems sampled uniformly, seed {cert['seed']}"
        clo, chi = cert["min_operand"], cert["max_operand"]
        common = dict(task_type="text-generation", task_name="Integer addition", dataset_type="hexadd-addition",
                      dataset_name=f"{clo}..{chi} + {clo}..{chi} addition, base {base} ({how})",
                      metric_args={"n": cert["n"], "wrong": cert["wrong"], "exhaustive": cert["exhaustive"],
                                   **({} if cert["exhaustive"] else {"seed": cert["seed"]})})
        results[:0] = [
            EvalResult(**common, metric_type="exact_match", metric_value=1 - cert["error_rate"],
                       metric_name=f"Exact match, certificate ({cert['wrong']:,} wrong of {cert['n']:,})"),
            EvalResult(**common, metric_type="certified_error_rate_upper_95", metric_value=cert["upper_95"],
                       metric_name="Error rate, one-sided 95% upper bound")]
    bands_path = model_dir / "bands.json"
    bands = json.loads(bands_path.read_text()) if bands_path.is_file() else None
    if bands:
        for r in bands["bands"]:
            if r["family"] != "all":
                continue
            blo, bhi = r["band"]
            common = dict(task_type="text-generation", task_name="Integer addition", dataset_type="hexadd-addition",
                          dataset_name=f"operands of {blo}..{bhi} digits, base {base} ({r['n']:,} fresh problems: "
                                       "uniform, carry runs, all-F plus 1, mixed lengths)",
                          metric_args={"n": r["n"], "wrong": r["wrong"]})
            results += [EvalResult(**common, metric_type="exact_match", metric_value=1 - r["wrong"] / r["n"],
                                   metric_name=f"Exact match, {blo}..{bhi} digits ({r['wrong']:,} wrong of {r['n']:,})"),
                        EvalResult(**common, metric_type="certified_error_rate_upper_95", metric_value=r["upper_95"],
                                   metric_name=f"Error rate, {blo}..{bhi} digits, one-sided 95% upper bound")]
    data = ModelCardData(library_name="transformers", pipeline_tag="text-generation", model_name=repo_id,
                         tags=["hexadd", "arithmetic", "addition", "gpt2"], eval_results=results or None,
                         datasets=[config["dataset"]] if config.get("dataset") else None)

    a = min(4095, hi)  # FFF+1 in base 16: a carry through every digit
    example, prompt = format_problem(a, 1, base), format_prompt(a, 1, base)
    n_params = _parameter_count(model_dir)
    train_cfg = model_dir / "training_config.yaml"
    trained = (f"trained from scratch on operands {lo}..{hi} ({_digits(lo, base)}..{_digits(hi, base)} digits), that adds "
               "integers of any length" if SCHEMES[config.get("position_scheme", "block")].windowed
               else f"trained from scratch to add integers {lo}..{hi}")
    lines = [
        f"# {repo_id}", "",
        f"A GPT-2 {trained}, written in base {base} with digits reversed "
        f"(least significant first). {n_params:,} parameters, {config['n_layer']} layers, {config['n_embd']} wide, "
        f"{config['n_head']} attention heads, {config['n_predict']} prediction heads, `{config['position_scheme']}` positions, "
        f"`{config.get('activation_function', 'gelu_new')}` activation.",
        "", "## Format", "",
        f"A problem is `+A+B+C+`; the model is given the prompt `+A+B+` and writes `C+`. "
        f"Example: {a} + 1 → `{example}` (prompt `{prompt}`).",
        _positions_line(config) + " The model computes them itself from `input_ids` when none are given"
        + (", as it does which number a token is in (`number_ids`: first operand, second, answer), "
           "which it embeds." if config.get("number_embedding") else "."),
        "", "## Results", "",
    ]
    if cert:
        lines += [f"**Certificate:** {cert['n'] - cert['wrong']:,} of {cert['n']:,} problems right ({cert['wrong']:,} wrong), "
                  f"{'every problem' if cert['exhaustive'] else 'a uniform sample (seed ' + str(cert['seed']) + ')'} "
                  f"of operands {cert['min_operand']}..{cert['max_operand']}: error rate {cert['error_rate']:.3g}, one-sided 95% upper bound "
                  f"**{cert['upper_95']:.3g}**. Checked by one teacher-forced pass per problem (head-1 argmax at every "
                  "answer token, which is exactly greedy decoding); training problems count, since users ask them.", ""]
        if search := cert.get("search"):
            found = (f"found **{search['wrong']:,} wrong**, so the model is not exact on its range (e.g. "
                     + "; ".join(search["examples"][:3]) + ")" if search["wrong"] else
                     f"found none (thinnest lead {search['thinnest_margin']:.2f} logits)")
            lines += [f"An error search from the {search['from_thinnest']} problems it answered by the thinnest "
                      f"margin ({search['rounds']} rounds of one-digit neighbours, {search['evaluated']:,} problems) "
                      f"{found}.", ""]
    if bands:
        lines += ["**Any length:** fresh problems in each band of operand lengths, in four families (uniform, runs of "
                  "columns summing to base - 1 after a carry, all-F plus 1, operands of mixed lengths), teacher forced:", "",
                  "| operand digits | problems | wrong | 95% upper bound on the error rate |", "|---|---|---|---|"]
        lines += [f"| {r['band'][0]}..{r['band'][1]} | {r['n']:,} | {r['wrong']:,} | {r['upper_95']:.2g} |"
                  for r in bands["bands"] if r["family"] == "all"]
        if loc := bands.get("locality"):
            lines += ["", f"Why a band speaks for longer numbers: head 1 at an answer digit depends only on the tokens within "
                          f"{loc['radius']} block positions (window × layers). Measured: redrawing every digit further away in "
                          f"{loc['problems']} problems of {loc['operand_digits']} digits moved head 1's logits there by "
                          f"{loc['max_abs_logit_difference']:.3g}."]
        lines.append("")
    if ev:
        lines += [f"Exact match on {ev['total']:,} held-out problems (no pair, in either order, seen in training): "
                  f"**{ev['accuracy']:.2%}** ({ev['correct']}/{ev['total']}), `{ev['mode']}` decoding, "
                  f"{ev['passes_per_answer']:.2f} forward passes per answer.", "",
                  f"| digits of a \\ b (base {base}) | " + " | ".join(str(b) for b in sorted({c['digits_b'] for c in ev['by_length']})) + " |",
                  "|---" * (1 + len({c['digits_b'] for c in ev['by_length']})) + "|"]
        for a in sorted({c["digits_a"] for c in ev["by_length"]}):
            cells = {c["digits_b"]: c for c in ev["by_length"] if c["digits_a"] == a}
            lines.append(f"| {a} | " + " | ".join(f"{cells[b]['correct'] / cells[b]['total']:.2%}" if b in cells else "-"
                                               for b in sorted({c['digits_b'] for c in ev['by_length']})) + " |")
    else:
        lines.append("No evaluation was recorded for this folder.")
    lines += [
        "", "## Use", "",
        "With the `hexadd` package installed (its import registers the model with the Auto classes):", "",
        "```bash", f"python3 inference.py --model {repo_id} 1234+5678", "```", "",
        "Without it, the model code published next to the weights is enough:", "",
        "```python",
        "import torch",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True).eval()',
        f'tok = AutoTokenizer.from_pretrained("{repo_id}")',
        f'ids = torch.tensor([tok.encode("{prompt}")])',
        "answer = []",
        "with torch.no_grad():",
        "    for _ in range(8):  # greedy: block positions are recomputed from the whole sequence each step",
        "        next_id = model(ids).logits[0, -1].argmax()",
        "        if tok.convert_ids_to_tokens(int(next_id)) == \"+\":",
        "            break",
        "        answer.append(tok.convert_ids_to_tokens(int(next_id)))",
        "        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)",
        f'print(int("".join(reversed(answer)), {base}))  # digits come least significant first',
        "```", "",
        "Do not use `generate()`: it numbers new tokens last+1, not by block position.",
    ]
    if train_cfg.is_file():
        lines += ["", "## Training config", "", "```yaml", train_cfg.read_text().rstrip(), "```"]
    if (model_dir / "training_curves.png").is_file():
        lines += ["", "![training curves](training_curves.png)"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def _positions_line(config: dict) -> str:
    scheme = SCHEMES[config.get("position_scheme", "block")]
    if not scheme.block:
        return f"Position ids number the tokens 0, 1, 2, ... ({scheme.name} position embeddings)."
    line = "Position ids are block positions: each digit's index inside its own number, `+` gets 0."
    if scheme.windowed:
        d = config.get("window", 2)
        line += (f" They reach attention only as a learned bias per layer, head and block distance: a query attends "
                 f"to the keys within ±{d} block positions of its own in each number, and to no other. There is no "
                 "position table, and the answer digits depend on a bounded neighbourhood: any length runs.")
    return line


def _parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open
    with safe_open(model_dir / "model.safetensors", "pt") as f:  # tied weights are stored once
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def _digits(n: int, base: int) -> int:
    return num_digits(n, base)
