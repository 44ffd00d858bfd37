#!/usr/bin/env python3
"""Decoding throughput: problems/s for single, multi and verified on 100,000 problems none of which is in
the training file (or, with --digits, fresh problems of that many digits each), forward passes per answer,
agreement with single, the modes side by side at several batch sizes, and inference.py --file end to end
(wall time and peak memory of the whole command).

    python3 bench/decode_speed.py
    python3 bench/decode_speed.py --model runs/anylength/model --digits 32 --problems 20000 --sweep 1 256 --name decode_speed-anylength-32
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, model_config, need_data, save


def unseen_problems(n: int, seed: int = 1) -> list[tuple[int, int]]:
    from hexadd.data import dataset
    from hexadd.data.generate import unordered
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
    p.add_argument("--model", default=str(ROOT / "model"))
    p.add_argument("--digits", type=int, help="fresh problems whose operands have exactly this many digits")
    p.add_argument("--sweep-problems", type=int, default=400, help="problems a batch size of the sweep, times the batch size")
    p.add_argument("--ops-problems", type=int, default=20, help="problems to count operator calls a pass on (0: none)")
    p.add_argument("--rounds", type=int, default=4, help="turns the modes take in the sweep, each on its own slice")
    p.add_argument("--no-cli", action="store_true", help="skip the inference.py --file measurement")
    p.add_argument("--name", default="decode_speed")
    args = p.parse_args()
    if args.digits is None:
        need_data()
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.inference.decoding import decode
    from hexadd.inference.loading import load_model

    torch.set_num_threads(os.cpu_count())
    model, tok = load_model(args.model)
    if args.digits is None:
        pairs = unseen_problems(args.problems)
    else:
        rng, base, d = random.Random(1), model.config.base, args.digits
        pairs = [(rng.randrange(base ** (d - 1), base ** d), rng.randrange(base ** (d - 1), base ** d))
                 for _ in range(args.problems)]
    modes = ["single", "multi", "verified"] if model.config.n_predict > 1 else ["single"]

    def in_turns(problems, batch):
        """Each mode's answers and seconds on `problems`, the modes taking turns on up to --rounds slices of whole
        batches, so a shared machine's drifting speed falls on each alike; and the number of slices."""
        step = -(-len(problems) // (args.rounds * batch)) * batch
        answers, seconds = {m: [] for m in modes}, dict.fromkeys(modes, 0.0)
        for i in range(0, len(problems), step):
            for mode in modes:
                t0 = time.perf_counter()
                answers[mode] += decode(model, tok, problems[i:i + step], mode, batch)
                seconds[mode] += time.perf_counter() - t0
        return answers, seconds, -(-len(problems) // step)

    answers, seconds, slices = in_turns(pairs, args.batch_size)
    texts = {m: [a.text for a in answers[m]] for m in modes}
    rows = {m: {"problems_per_s": len(pairs) / seconds[m], "seconds": seconds[m],
                "passes_per_answer": sum(a.passes for a in answers[m]) / len(pairs),
                "accuracy": sum(a.value == x + y for a, (x, y) in zip(answers[m], pairs)) / len(pairs),
                "same_answers_as_single": sum(t == s for t, s in zip(texts[m], texts["single"])) / len(pairs)}
            for m in modes}
    for mode, r in rows.items():
        r["speed_vs_single"] = r["problems_per_s"] / rows["single"]["problems_per_s"]
        print(f"{mode:>9}: {r['problems_per_s']:8.0f} problems/s ({r['speed_vs_single']:.2f}x single), "
              f"{r['passes_per_answer']:.2f} passes/answer, exact match {r['accuracy']:.4%}, "
              f"same answers as single {r['same_answers_as_single']:.4%}")

    # Small batches: a pass costs about the same whatever it holds, so fewer passes means faster answers.
    sweep = {}
    for batch in args.sweep:
        subset = pairs[:min(len(pairs), args.sweep_problems * batch)]
        answers, seconds, n_slices = in_turns(subset, batch)
        row = {m: len(subset) / seconds[m] for m in modes}
        passes = {m: sum(a.passes for a in answers[m]) / len(subset) for m in modes}
        sweep[batch] = {"problems": len(subset), "slices": n_slices, "problems_per_s": row, "passes_per_answer": passes,
                        "speed_vs_single": {m: row[m] / row["single"] for m in modes},
                        "wall_vs_single": {m: seconds[m] / seconds["single"] for m in modes},
                        "passes_vs_single": {m: passes[m] / passes["single"] for m in modes}}
        print(f"batch {batch:>5}: " + ", ".join(f"{m} {row[m]:.0f}/s (wall {seconds[m] / seconds['single']:.2f}x single, "
                                                f"passes {passes[m] / passes['single']:.2f}x)" for m in modes), flush=True)

    # Where a pass's time goes at batch 1: PyTorch operator calls (nested ones included) of the whole decoding
    # loop (forward passes, drafts, bookkeeping, the prompt's setup and the answers' parsing) a forward pass, by mode.
    ops = {}
    if args.ops_problems:
        from torch.profiler import ProfilerActivity, profile
        for mode in modes:
            decode(model, tok, pairs[:1], mode, 1)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                answers = decode(model, tok, pairs[:args.ops_problems], mode, 1)
            calls = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
            ops[mode] = calls / sum(a.passes for a in answers)
        print("operator calls of decoding, a forward pass, at batch 1: " + ", ".join(f"{m} {ops[m]:.0f} ({ops[m] / ops['single']:.2f}x single)"
                                                               for m in modes))

    cli = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.no_cli:
            modes = []
        problems = Path(tmp) / "problems.txt"
        problems.write_text("".join(f"{a}+{b}\n" for a, b in pairs))
        for mode in modes:
            wall, rss = run_cli(["inference.py", "--model", args.model, "--file", str(problems), "--decode", mode,
                                 "--batch-size", str(args.batch_size)])
            cli[mode] = {"wall_s": wall, "problems_per_s": len(pairs) / wall, "peak_rss_mb": rss}
            print(f"inference.py --file ({len(pairs):,} problems, --decode {mode}): {wall:.1f}s, "
                  f"{len(pairs) / wall:.0f} problems/s end to end, peak RSS {rss:.0f} MB")
    save(args.name, config=model_config(args.model), result={"model": args.model, "digits": args.digits, "problems": len(pairs), "batch_size": args.batch_size, "slices": slices, "modes": rows,
                          "ops_per_pass_batch_1": ops,
                          "batch_sweep": sweep, "cli": cli})


if __name__ == "__main__":
    main()
