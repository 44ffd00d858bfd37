#!/usr/bin/env python3
"""Add numbers with a trained model: decimal in, decimal out.

  python3 inference.py 1234+5678 "4095 + 1"
  python3 inference.py 0xFFFF+0x1                 (hexadecimal in, hexadecimal out)
  python3 inference.py --file problems.txt        (one a+b per line; - reads standard input)
  python3 inference.py --eval                     (exact match on the held-out problems: the test split of data/)
  python3 inference.py --certify                  (exact match on 10^6 problems sampled from the whole range)
  python3 inference.py --certify all              (on every problem in the range)
  python3 inference.py --certify --range 0 9999   (on another range: any-length models certify any)
  python3 inference.py --bands 1000               (any-length models: 1,000 problems a family in each length band)
"""
import os
import re
import sys
from itertools import islice
from pathlib import Path

from hexadd.common import cli
from hexadd.config.schema import TrainConfig
from hexadd.config.files import load
from hexadd.common.errors import ConfigError, HexaddError
from hexadd.data.numbers import is_hex_problem, parse_decimal_problem, show


def main():
    p = cli.parser(__doc__)
    p.add_argument("problems", nargs="*", help="problems like 1234+5678")
    p.add_argument("--file", help="read problems one per line from FILE (- for standard input)")
    p.add_argument("--eval", nargs="?", const="", metavar="PATH",
                   help="exact-match accuracy on the test split of data.dir, or of another data folder, or on a file of +A+B+C+ or decimal a+b lines")
    p.add_argument("--certify", nargs="?", const="default", metavar="N|all",
                   help="exact match on N problems sampled uniformly from the whole trained range "
                        "(default 1,000,000), or on every one of them with 'all'")
    p.add_argument("--range", nargs=2, type=int, metavar=("LO", "HI"),
                   help="--certify operands LO..HI instead of the trained range (beyond it: any-length models)")
    p.add_argument("--bands", type=int, metavar="N",
                   help="any-length models: exact match on N fresh problems of each family in each band of "
                        "operand lengths, 1-8 .. 513-1,024 and 4,096 hex digits (hexadd/verify/bands.py)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --certify and --bands samples (default 0)")
    p.add_argument("--search", type=int, default=10, metavar="ROUNDS",
                   help="after --certify, rounds of a search for wrong problems near the thinnest it checked "
                        "(default 10, about 25,000 problems; 0: none)")
    p.add_argument("--eval-dir", help="where --eval and --certify write their results "
                                      "(default: the model folder; for a Hub model, the current folder)")
    p.add_argument("--model", help="local model folder or Hub repo id user/name (default: output.model_dir of the config)")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) when --model is a repo id")
    p.add_argument("--decode", choices=["single", "multi", "verified"],
                   help="decoding mode (default: verified when the model has several heads, else single)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--device", default="auto", help="auto (the best present), cpu, cuda, cuda:N or mps")
    p.add_argument("--allow-out-of-range", action="store_true", help="answer operands outside the trained range anyway")
    cli.add_config_args(p, "train_config.yaml")  # names the model and data folders
    args, unknown = p.parse_known_args()
    for extra in unknown:  # `-3+4` looks like an option to argparse; it is a (negative) problem
        if not re.match(r"-[0-9.]", extra):
            p.error(f"unrecognized arguments: {extra}")
        args.problems.append(extra)
    if not args.problems and args.file is None and args.eval is None and args.certify is None and args.bands is None:
        raise ConfigError("give problems (1234+5678), --file PATH, --eval, --certify or --bands")
    if args.range is not None and (args.certify is None or not 0 <= args.range[0] <= args.range[1]):
        raise ConfigError("--range LO HI: goes with --certify, and needs 0 <= LO <= HI")
    if args.bands is not None and args.bands < 1:
        raise ConfigError(f"--bands: needs at least 1 problem a family, got {args.bands}")
    samples = _certify_count(args.certify)
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    if args.search < 0:
        raise ConfigError(f"--search: must be >= 0 rounds, got {args.search}")
    pairs, hexadecimal = [], set()
    for text in args.problems:  # all command-line problems are checked before the model loads
        try:
            pairs.append(parse_decimal_problem(text))
        except ValueError as e:
            raise HexaddError(str(e)) from None
        if is_hex_problem(text):
            hexadecimal.add(pairs[-1])

    cfg = load(TrainConfig, args.config, args.overrides) if args.model is None or args.eval == "" else None
    from hexadd.common.devices import pick_device
    device = pick_device(args.device, "--device")
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.inference.decoding import check_fits, decode, default_mode
    from hexadd.inference.loading import load_model
    torch.set_num_threads(args.threads or os.cpu_count())

    model_arg = args.model or cfg.output.model_dir
    model, tok = load_model(model_arg, args.revision, device)
    local = Path(model_arg).is_dir()
    out = Path(args.eval_dir) if args.eval_dir else (Path(model_arg) if local else Path("."))
    c = model.config
    mode = args.decode or default_mode(model)
    known = f"{c.min_operand}..{c.max_operand}"

    def in_range(a, b):  # a block-window model declares no range: it reads only block distances inside its window
        return c.windowed or (c.min_operand <= a <= c.max_operand and c.min_operand <= b <= c.max_operand)

    def refusal(a, b):
        """Why a+b cannot be answered, or None."""
        if not args.allow_out_of_range and not in_range(a, b):
            return f"{a}+{b}: this model was trained on operands {known}; use --allow-out-of-range to answer anyway"
        try:
            check_fits(model, a, b)
        except ValueError as e:
            return str(e)
        return None

    def answer(batch, hex_pairs=frozenset()):
        for ans in decode(model, tok, batch, mode, args.batch_size):
            h = (ans.a, ans.b) in hex_pairs
            problem = f"{show(ans.a, h)}+{show(ans.b, h)}"
            if ans.value is None:
                print(f"{problem}=?")
                print(f"note: {problem[:60]}: {ans.note}", file=sys.stderr)
            else:
                print(f"{problem}={show(ans.value, h)}")
                if not in_range(ans.a, ans.b):
                    print(f"note: {problem[:60]}: outside the trained operands {known}; the answer is "
                          f"{'right' if ans.value == ans.a + ans.b else 'wrong'}", file=sys.stderr)
        sys.stdout.flush()

    for a, b in pairs:
        if (why := refusal(a, b)) is not None:
            raise HexaddError(why)
    if pairs:
        answer(pairs, hexadecimal)

    bad_lines = 0
    if args.file is not None:
        src = sys.stdin if args.file == "-" else _open(args.file)
        lines = enumerate(src, 1)
        while chunk := list(islice(lines, args.batch_size)):
            batch, hex_pairs = [], set()
            for n, line in chunk:
                if not line.strip():
                    continue
                try:
                    a, b = parse_decimal_problem(line)
                except ValueError as e:
                    print(f"error: line {n}: {e}", file=sys.stderr)
                    bad_lines += 1
                    continue
                if (why := refusal(a, b)) is not None:
                    print(f"error: line {n}: {why}", file=sys.stderr)
                    bad_lines += 1
                    continue
                batch.append((a, b))
                if is_hex_problem(line):
                    hex_pairs.add((a, b))
            if batch:
                answer(batch, hex_pairs)

    if args.eval is not None:
        from hexadd.verify.evaluation import evaluate_file, report, write_outputs
        from hexadd.data.dataset import resolve
        path = Path(args.eval) if args.eval else resolve(cfg.data)
        result = evaluate_file(model, tok, path, mode, args.batch_size)
        print(report(result))
        write_outputs(result, out, path)
        print(f"wrote {out / 'accuracy_by_length.png'} and {out / 'eval_results.json'}")
    if args.certify is not None:
        from hexadd.verify.certificate import WRONG_FILE, report, save
        from hexadd.verify.certify import certify
        lo, hi = args.range or (c.min_operand, c.max_operand)
        if not c.windowed and not (c.min_operand <= lo <= hi <= c.max_operand) and not args.allow_out_of_range:
            raise HexaddError(f"--range {lo} {hi}: this model was trained on operands {known}; use "
                              "--allow-out-of-range to certify beyond them anyway")
        cert = certify(model, tok, samples, seed=args.seed, batch_size=max(args.batch_size, 4096),
                       wrong_path=out / WRONG_FILE, search_rounds=args.search, operands=(lo, hi))
        print(report(cert))
        print(f"wrote {save(cert, out)} and {out / WRONG_FILE}")
    if args.bands is not None:
        if not c.windowed:
            raise HexaddError("--bands: only a block-window model (positions block_relative) runs at any length")
        from hexadd.verify.bands import certify_bands, locality, save_bands
        from hexadd.verify.bands import report as bands_report
        records = certify_bands(model, tok, args.bands, seed=args.seed)
        result = {"bands": records, "locality": locality(model, tok)}
        print(bands_report(result))
        print(f"wrote {save_bands(result, out)}")
    if bad_lines:
        sys.exit(1)


def _certify_count(text: str | None) -> int | None:
    """--certify N or all -> N, or None for every problem."""
    if text is None or text == "all":
        return None
    if text == "default":
        from hexadd.verify.certify import DEFAULT_SAMPLES  # imports torch: only once the arguments are known good
        return DEFAULT_SAMPLES
    try:
        n = int(float(text)) if "e" in text.lower() else int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise ConfigError(f"--certify: expected a number of problems or 'all', got {text!r}") from None
    if n < 1:
        raise ConfigError(f"--certify: needs at least 1 problem, got {n}")
    return n


def _open(path):
    try:
        return open(path)
    except OSError as e:
        raise HexaddError(f"--file {path}: {e.strerror.lower()}") from None


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
