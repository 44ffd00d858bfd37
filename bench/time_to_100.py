#!/usr/bin/env python3
"""Wall time from a fresh start to 100% held-out exact match with the default config, for several seeds
(median reported), with each training process's peak memory. Needs `make data tokenizer` first."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, need_data, save


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    need_data()
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            model_dir.mkdir()
            for f in ("tokenizer.json", "tokenizer_config.json"):
                (model_dir / f).write_bytes((ROOT / "model" / f).read_bytes())
            cmd = [sys.executable, "trainer.py", "--set", f"training.seed={seed}", "--set", f"output.model_dir={model_dir}",
                   "--set", f"output.run_dir={tmp}/run"]
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            metrics = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
            first = next((m for m in metrics if m["accuracy"] >= 1.0), None)
            runs.append({"seed": seed, "exit": status, "reached_100": first is not None,
                         "train_time_to_100_s": first["train_time_s"] if first else None,
                         "step_to_100": first["step"] if first else None, "best_accuracy": max(m["accuracy"] for m in metrics),
                         "process_wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024})
            r = runs[-1]
            print(f"seed {seed}: " + (f"100% at step {r['step_to_100']} after {r['train_time_to_100_s']:.0f}s of training"
                                      if first else f"best {r['best_accuracy']:.4%}, never 100%")
                  + f"; whole command {wall:.0f}s, peak RSS {r['peak_rss_mb']:.0f} MB")
    times = [r["train_time_to_100_s"] for r in runs if r["reached_100"]]
    median = statistics.median(times) if len(times) == len(runs) else None
    print(f"median time to 100%: {median:.0f}s" if median else f"{len(times)}/{len(runs)} seeds reached 100%")
    save("time_to_100", {"runs": runs, "median_train_time_to_100_s": median})


if __name__ == "__main__":
    main()
