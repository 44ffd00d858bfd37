"""What the model attends to while it reads a problem and writes its answer: the weights of every layer and head,
for the figures of visualize_attention.py, the demo and each trained model folder."""
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.numbers import format_prompt
from ..modeling.positions import block_window
from .. import plots
from .decoding import decode


@dataclass
class ProblemAttention:
    """What the model attends to while it reads a+b and writes its answer."""
    shown: str                 # a+b=answer, in decimal
    title: str
    tokens: list[str]
    positions: list[int]
    attentions: list           # per layer a (H, T, T) float tensor on the CPU


def attention_of(model, tok, a: int, b: int, answer=None) -> ProblemAttention:
    """Run a+b (prompt plus the model's own answer: `answer`, a decoding.Answer, or plain greedy's) with eager attention."""
    c = model.config
    answer = answer or decode(model, tok, [(a, b)], "single")[0]
    device = next(model.parameters()).device
    ids = torch.tensor([tok.encode(format_prompt(a, b, c.base, c.reverse)) + tok.encode(answer.text)], device=device)  # (1, T)
    mask = torch.ones_like(ids)
    positions = model.position_ids(ids, mask)
    previous = model.config._attn_implementation
    # sdpa returns no attention weights; an eager model (as load_model leaves one on the CPU) is left untouched,
    # so threads sharing it never see it switch.
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = model(ids, attention_mask=mask, position_ids=positions, output_attentions=True).attentions
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)
    T = ids.shape[1]
    if att[0].shape[-1] != T:  # a block-window model's long rows: each query's window of keys, spread out again
        window = block_window(positions, model.number_ids(ids, mask), mask, c.window)
        att = [window.dense(x, T) for x in att]
    tokens = tok.convert_ids_to_tokens(ids[0].tolist())
    shown = f"{a}+{b}={answer.value if answer.value is not None else '?'}"
    title = f"{shown}   as the model reads it: {''.join(tokens)} (base {c.base}, digits reversed)"
    return ProblemAttention(shown, title, tokens, positions[0].tolist(), [x[0].float().cpu() for x in att])


def problem_figure(model, tok, a: int, b: int, answer=None, layers=None, heads=None):
    """(a+b=answer, one Figure of every layer and head's attention for that problem)."""
    p = attention_of(model, tok, a, b, answer)
    c = model.config
    layers = list(range(c.n_layer)) if layers is None else layers
    heads = list(range(c.n_head)) if heads is None else heads
    return p.shown, plots.grid_figure(p.attentions, p.tokens, p.positions, p.title, layers, heads)


def problem_attention(model, tok, a: int, b: int, out_dir: Path, layers=None, heads=None) -> tuple[str, list[Path]]:
    """Run a+b (prompt plus the model's own greedy answer) with eager attention and plot every layer into files."""
    c = model.config
    layers = list(range(c.n_layer)) if layers is None else layers
    heads = list(range(c.n_head)) if heads is None else heads
    p = attention_of(model, tok, a, b)
    return p.shown, plots.attention_figures(p.attentions, p.tokens, p.positions, p.title, Path(out_dir), layers, heads)
