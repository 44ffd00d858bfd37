#!/usr/bin/env python3
"""Plot each layer's attention for one problem: the prompt plus the model's own answer.

  python3 visualize_attention.py 101+1002          (figures into the model folder's attention_visualizations/)
  python3 visualize_attention.py 101+1002 --out figures
"""
from pathlib import Path

from hexadd.common import cli
from hexadd.config.schema import TrainConfig
from hexadd.config.files import load
from hexadd.common.errors import ConfigError, HexaddError
from hexadd.data.numbers import parse_decimal_problem

DEFAULT_PROBLEM = "101+1002"


def _indices(text: str | None, count: int, what: str) -> list[int]:
    """'1,3' (1-based) -> [0, 2]; None -> all."""
    if text is None:
        return list(range(count))
    try:
        picked = [int(x) - 1 for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"--{what}: expected numbers like 1,2") from None
    if any(not 0 <= i < count for i in picked):
        raise ConfigError(f"--{what}: the model has {what} 1..{count}")
    return picked


def main():
    p = cli.parser(__doc__)
    p.add_argument("problem", nargs="?", help=f"a+b in decimal (default {DEFAULT_PROBLEM}, or one in the model's range)")
    p.add_argument("--model", help="local model folder or Hub repo id (default: output.model_dir of the config)")
    p.add_argument("--revision", help="Hub revision when --model is a repo id")
    p.add_argument("--out", help="output folder (default: attention_visualizations/ in the model folder, "
                                 "or in the current folder for a Hub model)")
    p.add_argument("--layers", help="layers to plot, 1-based, e.g. 1,2 (default: all)")
    p.add_argument("--heads", help="attention heads to plot, 1-based (default: all)")
    p.add_argument("--allow-out-of-range", action="store_true", help="plot operands outside the trained range anyway")
    cli.add_config_args(p, "train_config.yaml")  # names the model folder
    args = p.parse_args()
    try:
        a, b = parse_decimal_problem(args.problem or DEFAULT_PROBLEM)
    except ValueError as e:
        raise HexaddError(str(e)) from None
    model_arg = args.model or load(TrainConfig, args.config, args.overrides).output.model_dir

    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.inference.decoding import check_fits
    from hexadd.inference.loading import load_model
    from hexadd.inference.attention import problem_attention

    model, tok = load_model(model_arg, args.revision)
    c = model.config
    layers = _indices(args.layers, c.n_layer, "layers")
    heads = _indices(args.heads, c.n_head, "heads")
    if args.problem is None and not (c.min_operand <= min(a, b) and max(a, b) <= c.max_operand):
        a, b = c.max_operand // 3, c.max_operand  # the default example is beyond this model's range
    if not args.allow_out_of_range and not c.windowed and not (c.min_operand <= min(a, b) and max(a, b) <= c.max_operand):
        raise HexaddError(f"{a}+{b}: this model was trained on operands {c.min_operand}..{c.max_operand}; "
                          "use --allow-out-of-range to plot it anyway")
    try:
        check_fits(model, a, b)
    except ValueError as e:
        raise HexaddError(str(e)) from None
    out = Path(args.out) if args.out else (Path(model_arg) if Path(model_arg).is_dir() else Path(".")) / "attention_visualizations"
    shown, files = problem_attention(model, tok, a, b, out, layers, heads)
    print(f"{shown}: wrote {len(files)} figures to {out}/")


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
