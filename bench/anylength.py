#!/usr/bin/env python3
"""Memory and time of an any-length (block-window) model at long lengths, each measurement in a fresh process
(its peak RSS is the process's own):
- 500 problems of 512 + 512 hex digits, decoded (default mode): right answers, wall time, peak RSS;
- 100 problems of 4,096 + 4,096 hex digits (16,384 bits each): the same;
- the time per answer digit at 64 and at 4,096 digits, the same rows in one batch, side by side: as many rows as
  decoding puts in a batch at 4,096 digits (at most --per-digit-rows).

    python3 bench/anylength.py --model runs/anylength/model --name anylength
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

from common import ROOT, model_config, save


def child(model_dir: str, digits: int, n: int, batch_size: int, seed: int, mode: str | None) -> dict:
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.inference.decoding import decode, default_mode
    from hexadd.inference.loading import load_model

    torch.set_num_threads(os.cpu_count())
    model, tok = load_model(model_dir)
    base = model.config.base
    rng = random.Random(seed)
    pairs = [(rng.randrange(base ** (digits - 1), base ** digits), rng.randrange(base ** (digits - 1), base ** digits))
             for _ in range(n)]
    mode = mode or default_mode(model)
    t0 = time.perf_counter()
    answers = decode(model, tok, pairs, mode, batch_size)
    wall = time.perf_counter() - t0
    digits_written = sum(len(a.text) for a in answers)
    return {"digits": digits, "problems": n, "batch_size": batch_size, "mode": mode,
            "right": sum(a.value == x + y for a, (x, y) in zip(answers, pairs)), "decode_s": wall,
            "answer_tokens": digits_written, "ms_per_answer_token": 1e3 * wall / digits_written,
            "passes_per_answer": sum(a.passes for a in answers) / n}


def measure(model_dir: str, digits: int, n: int, batch_size: int, seed: int = 0, mode: str | None = None) -> dict:
    """One child process: its result and its peak RSS."""
    cmd = [sys.executable, __file__, "--child", "--model", model_dir, "--digits", str(digits), "--n", str(n),
           "--batch-size", str(batch_size), "--seed", str(seed)] + (["--mode", mode] if mode else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    if status:
        sys.exit(f"{' '.join(cmd)} failed: {err[-1000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(peak_rss_mb=usage.ru_maxrss / 1024, process_wall_s=time.perf_counter() - t0)
    print(f"{digits:>5} + {digits} digits, {n} problems, batch {batch_size}: {result['right']}/{n} right, "
          f"decode {result['decode_s']:.1f} s ({result['ms_per_answer_token']:.3f} ms per answer token, "
          f"{result['passes_per_answer']:.1f} passes per answer), peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(ROOT / "runs" / "anylength" / "model"))
    p.add_argument("--name", default="anylength")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--digits", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=512, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--mode", help="decoding mode (default: the model's default)")
    p.add_argument("--per-digit-rows", type=int, default=16,
                   help="at most this many rows a batch for the time-per-digit comparison")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.digits, args.n, args.batch_size, args.seed, args.mode)))
        return
    result = {"model": args.model,
              "memory_512": measure(args.model, 512, 500, 512, mode=args.mode),
              "memory_4096": measure(args.model, 4096, 100, 512, mode=args.mode)}
    from hexadd.inference.decoding import decode_rows
    from hexadd.modeling.model import HexAddConfig
    config = HexAddConfig.from_pretrained(args.model)
    rows = min(args.per_digit_rows, decode_rows(config, [(config.base ** 4096 - 1, 0)]))
    short = measure(args.model, 64, rows, rows, seed=1, mode=args.mode)
    long = measure(args.model, 4096, rows, rows, seed=1, mode=args.mode)
    result["per_digit"] = {"rows": rows, "at_64": short, "at_4096": long,
                           "ratio_4096_to_64": long["ms_per_answer_token"] / short["ms_per_answer_token"]}
    print(f"time per answer token at 4,096 digits / at 64 digits: {result['per_digit']['ratio_4096_to_64']:.2f}")
    save(args.name, result, config=model_config(args.model))


if __name__ == "__main__":
    main()
