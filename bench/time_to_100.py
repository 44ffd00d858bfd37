#!/usr/bin/env python3
"""Wall time from a fresh start to 100% held-out exact match with the default config, for several seeds
(median reported), with each training process's peak memory. Needs `make data tokenizer` first.

Two clocks: `wall_to_100_s` runs from launching trainer.py to the end of the evaluation that first
reads 100% (imports, data loading, evaluations and checkpoints included); `train_time_to_100_s` counts
optimizer steps only. A seed that never reaches 100% counts as infinitely slow in the median."""
import argparse
import json
import math
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
            t0, launched = time.perf_counter(), time.time()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            metrics = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
            first = next((m for m in metrics if m["accuracy"] >= 1.0), None)
            runs.append({"seed": seed, "exit": status, "reached_100": first is not None,
                         "wall_to_100_s": first["time"] - launched if first else None,
                         "train_time_to_100_s": first["train_time_s"] if first else None,
                         "step_to_100": first["step"] if first else None, "best_accuracy": max(m["accuracy"] for m in metrics),
                         "process_wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024})
            r = runs[-1]
            print(f"seed {seed}: " + (f"100% at step {r['step_to_100']}, {r['wall_to_100_s']:.0f}s after launch "
                                      f"({r['train_time_to_100_s']:.0f}s of optimizer steps)"
                                      if first else f"best {r['best_accuracy']:.4%}, never 100%")
                  + f"; whole command {wall:.0f}s, peak RSS {r['peak_rss_mb']:.0f} MB")
    def median(key):
        m = statistics.median(r[key] if r["reached_100"] else math.inf for r in runs)
        return None if math.isinf(m) else m

    wall, train = median("wall_to_100_s"), median("train_time_to_100_s")
    reached = sum(r["reached_100"] for r in runs)
    print(f"{reached}/{len(runs)} seeds reached 100%; median "
          + (f"{wall:.0f}s after launch ({train:.0f}s of optimizer steps)" if wall is not None else "never"))
    save("time_to_100", {"runs": runs, "median_wall_to_100_s": wall, "median_train_time_to_100_s": train})


if __name__ == "__main__":
    main()
