#!/usr/bin/env python3
"""Wall time from launching trainer.py with the default config until its own stopping rule stops it, for
several seeds (median reported), each training process's peak memory, and then the certificate of the
model it saved: exact match on a fresh seeded uniform sample of the whole operand range (default 10^6;
its time is reported beside, not counted). Needs `make data tokenizer` first. The results file is written
after every seed (`complete` false until the last), so a run stopped early keeps the seeds it finished.

Clocks: `wall_to_stop_s` runs from launching trainer.py to the end of the evaluation that stopped it
(imports, data loading, evaluations and checkpoints included); `train_time_s` counts optimizer steps
only; `wall_to_first_100_held_out_s` is when the 5,016 held-out problems first all came out right.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, need_data, resolved_config, save


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--certify", type=int, default=1_000_000, help="problems in each saved model's certificate")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra trainer.py --set overrides")
    p.add_argument("--name", default="time_to_100", help="results file name under bench/results/")
    args = p.parse_args()
    need_data()
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir, run_dir = Path(tmp) / "model", Path(tmp) / "run"
            cmd = [sys.executable, "trainer.py", "--set", f"training.seed={seed}", "--set", f"output.model_dir={model_dir}",
                   "--set", f"output.run_dir={run_dir}", "--set", "checks.certify=0",
                   *[a for o in args.overrides for a in ("--set", o)]]
            t0, launched = time.perf_counter(), time.time()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            out = proc.stdout.read()
            wall = time.perf_counter() - t0
            metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
            first = next((m for m in metrics if m["accuracy"] >= 1.0), None)
            stopped = next((line.split(" by ", 1)[1] for line in out.splitlines() if line.startswith("stopped at step")), None)
            r = {"seed": seed, "exit": status, "steps": metrics[-1]["step"], "stopped_by": stopped,
                 "wall_to_stop_s": metrics[-1]["time"] - launched, "train_time_s": metrics[-1]["train_time_s"],
                 "samples_per_s": metrics[-1]["samples_per_s"],
                 "wall_to_first_100_held_out_s": first["time"] - launched if first else None,
                 "gates": [line.strip() for line in out.splitlines() if "stopping gate" in line],
                 "process_wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}
            t1 = time.perf_counter()
            cert = subprocess.run([sys.executable, "inference.py", "--model", str(model_dir), "--certify", str(args.certify),
                                   "--seed", "0"], cwd=ROOT, capture_output=True, text=True)
            c = json.loads((model_dir / "certificate.json").read_text()) if cert.returncode == 0 else {}
            r.update(certificate={k: c.get(k) for k in ("n", "wrong", "upper_95", "exhaustive", "seed", "problems_per_s",
                                                        "search")},
                     certificate_examples=c.get("examples", [])[:5], certify_wall_s=time.perf_counter() - t1)
            runs.append(r)
            print(f"seed {seed}: stopped by {stopped} at step {r['steps']}, {r['wall_to_stop_s']:.0f}s after launch "
                  f"({r['train_time_s']:.0f}s of optimizer steps), peak RSS {r['peak_rss_mb']:.0f} MB; certificate "
                  f"{c.get('wrong')} wrong of {c.get('n') or 0:,} ({r['certify_wall_s']:.0f}s)", flush=True)
            # Written after every seed: a run cut short keeps the seeds it finished.
            summary = _summary(runs, args, complete=len(runs) == len(args.seeds))
    print(f"median {summary['median_wall_to_stop_s']:.0f}s from launch to stop; {summary['certified_exact']}/{len(runs)} "
          f"saved models certify 0 wrong in {args.certify:,} problems")


def _summary(runs, args, complete):
    result = {"runs": runs, "median_wall_to_stop_s": statistics.median(r["wall_to_stop_s"] for r in runs),
              "certified_exact": sum(r["certificate"]["wrong"] == 0 for r in runs),
              "certify_problems": args.certify, "overrides": args.overrides, "complete": complete}
    # The trainer's config as each seed ran it (training.seed differs per run: runs[].seed).
    config = resolved_config(train=["checks.certify=0", *args.overrides], data_dir=ROOT / "data")
    save(args.name, result, config={**config, "per_run": {"training.seed": [r["seed"] for r in runs]}})
    return result


if __name__ == "__main__":
    main()
