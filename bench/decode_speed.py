#!/usr/bin/env python3
"""Decoding throughput: problems/s for single, multi and verified on 100,000 problems none of which is in
the training file, forward passes per answer, agreement with single, and inference.py --file end to end
(wall time and peak memory of the whole command)."""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, need_data, save


def unseen_problems(n: int, seed: int = 1) -> list[tuple[int, int]]:
    from hexadd import dataset
    from hexadd.data import unordered
    meta = dataset.load_meta(ROOT / "data")
    train = dataset.load(ROOT / "data")["train"]
    seen = {unordered((a, b)) for a, b in zip(train["a"], train["b"])}
    rng, out = random.Random(seed), []
    while len(out) < n:
        p = (rng.randint(meta.min_operand, meta.max_operand), rng.randint(meta.min_operand, meta.max_operand))
        if unordered(p) not in seen:
            out.append(p)
    return out


def run_cli(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        sys.exit(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-500:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--problems", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--sweep", type=int, nargs="*", default=[1, 8, 64, 256], help="batch sizes to compare modes at")
    args = p.parse_args()
    need_data()
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.decoding import decode
    from hexadd.loading import load_model

    torch.set_num_threads(os.cpu_count())
    model, tok = load_model(str(ROOT / "model"))
    pairs = unseen_problems(args.problems)
    modes = ["single", "multi", "verified"] if model.config.n_predict > 1 else ["single"]
    rows, texts = {}, {}
    for mode in modes:
        t0 = time.perf_counter()
        answers = decode(model, tok, pairs, mode, args.batch_size)
        seconds = time.perf_counter() - t0
        texts[mode] = [a.text for a in answers]
        rows[mode] = {"problems_per_s": len(pairs) / seconds, "seconds": seconds,
                      "passes_per_answer": sum(a.passes for a in answers) / len(pairs),
                      "accuracy": sum(a.value == x + y for a, (x, y) in zip(answers, pairs)) / len(pairs),
                      "same_answers_as_single": sum(t == s for t, s in zip(texts[mode], texts["single"])) / len(pairs)}
    for mode, r in rows.items():
        r["speed_vs_single"] = r["problems_per_s"] / rows["single"]["problems_per_s"]
        print(f"{mode:>9}: {r['problems_per_s']:8.0f} problems/s ({r['speed_vs_single']:.2f}x single), "
              f"{r['passes_per_answer']:.2f} passes/answer, exact match {r['accuracy']:.4%}, "
              f"same answers as single {r['same_answers_as_single']:.4%}")

    # Small batches: a pass costs about the same whatever it holds, so fewer passes means faster answers.
    sweep = {}
    for batch in args.sweep:
        subset = pairs[:min(len(pairs), 400 * batch)]
        row = {}
        for mode in modes:
            t0 = time.perf_counter()
            decode(model, tok, subset, mode, batch)
            row[mode] = len(subset) / (time.perf_counter() - t0)
        sweep[batch] = {"problems": len(subset), "problems_per_s": row,
                        "speed_vs_single": {m: row[m] / row["single"] for m in modes}}
        print(f"batch {batch:>5}: " + ", ".join(f"{m} {row[m]:.0f}/s ({row[m] / row['single']:.2f}x)" for m in modes))

    with tempfile.TemporaryDirectory() as tmp:
        problems = Path(tmp) / "problems.txt"
        problems.write_text("".join(f"{a}+{b}\n" for a, b in pairs))
        cli = {}
        for mode in modes:
            wall, rss = run_cli(["inference.py", "--file", str(problems), "--decode", mode, "--batch-size", str(args.batch_size)])
            cli[mode] = {"wall_s": wall, "problems_per_s": len(pairs) / wall, "peak_rss_mb": rss}
            print(f"inference.py --file ({len(pairs):,} problems, --decode {mode}): {wall:.1f}s, "
                  f"{len(pairs) / wall:.0f} problems/s end to end, peak RSS {rss:.0f} MB")
    save("decode_speed", {"problems": len(pairs), "batch_size": args.batch_size, "modes": rows,
                          "batch_sweep": sweep, "cli": cli})


if __name__ == "__main__":
    main()
