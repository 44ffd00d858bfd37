#!/usr/bin/env python3
"""Training-recipe variants side by side: for each variant and seed, train with its overrides on shared
data, then certify the saved model on the same seeded uniform sample of the whole range. Several runs at a
time (a GPU is latency-bound at these sizes; on a CPU use --parallel 1). Writes bench/results/<name>.json.

    python3 bench/recipe_sweep.py --device cuda --parallel 6 \\
        --variant base= --variant lr3e-3=training.learning_rate=0.003 --variant long=training.max_steps=3000,...

A variant is NAME=OVERRIDE,OVERRIDE,... (trainer.py --set values; empty for the default recipe).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT, resolved_config, save


def run_one(work: Path, name: str, overrides: list[str], seed: int, device: str, certify: int, common: list[str]):
    tag = f"{name}-s{seed}"
    model_dir, run_dir = work / f"model-{tag}", work / f"run-{tag}"
    cmd = [sys.executable, "trainer.py", "--set", f"data.dir={work / 'data'}", "--set", f"tokenizer.dir={work / 'tokenizer'}",
           "--set", f"output.model_dir={model_dir}", "--set", f"output.run_dir={run_dir}",
           "--set", f"runtime.device={device}", "--set", f"training.seed={seed}", "--set", f"checks.certify={certify}",
           *[a for o in common + overrides for a in ("--set", o)]]
    launched = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    cert = json.loads((model_dir / "certificate.json").read_text()) if (model_dir / "certificate.json").is_file() else {}
    stopped = next((line.split(" by ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("stopped at step")), None)
    gates = [line for line in proc.stdout.splitlines() if "stopping gate" in line]
    r = {"variant": name, "seed": seed, "overrides": overrides, "exit": proc.returncode, "stopped_by": stopped,
         "steps": rows[-1]["step"] if rows else None, "gates": gates,
         "wall_s": (rows[-1]["time"] - launched) if rows else None,
         "train_time_s": rows[-1]["train_time_s"] if rows else None,
         "first_100_held_out_step": next((x["step"] for x in rows if x["accuracy"] >= 1.0), None),
         "certificate": {k: cert.get(k) for k in ("n", "wrong", "upper_95", "seed")},
         "examples": cert.get("examples", [])[:5]}
    if proc.returncode:
        r["stderr"] = proc.stderr[-1500:]
    print(f"{tag}: exit {proc.returncode}, stopped by {stopped} at step {r['steps']}, "
          f"{cert.get('wrong')} wrong of {cert.get('n')}", flush=True)
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", action="append", required=True, metavar="NAME=OVERRIDES")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--device", default="auto")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--certify", type=int, default=1_000_000)
    p.add_argument("--set", dest="common", action="append", default=[], help="trainer.py --set for every variant")
    p.add_argument("--data-set", action="append", default=[], help="data_generator.py --set")
    p.add_argument("--name", default="recipe_sweep")
    p.add_argument("--out", help="also copy the results JSON here")
    args = p.parse_args()
    variants = {}
    for v in args.variant:
        name, _, rest = v.partition("=")
        variants[name] = [o for o in rest.split(",") if o]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for cmd in (["data_generator.py", "--set", f"output.dir={work / 'data'}", *[a for o in args.data_set for a in ("--set", o)]],
                    ["tokenizer.py", "--set", f"data.dir={work / 'data'}", "--set", f"tokenizer.dir={work / 'tokenizer'}"]):
            proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(proc.stderr)
        jobs = [(name, o, seed) for name, o in variants.items() for seed in args.seeds]
        t0, runs, lock = time.perf_counter(), [], threading.Lock()

        def job(j):
            r = run_one(work, *j, args.device, args.certify, args.common)
            with lock:  # saved after every run: a sweep cut short keeps what finished
                runs.append(r)
                write(args, variants, runs, time.perf_counter() - t0)

        with ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(job, jobs))


def write(args, variants, runs, wall):
    summary = {}
    for name in variants:
        rs = sorted((r for r in runs if r["variant"] == name), key=lambda r: r["seed"])
        summary[name] = {"wrong": [r["certificate"]["wrong"] for r in rs], "steps": [r["steps"] for r in rs],
                         "stopped_by": [r["stopped_by"] for r in rs]}
    config = {name: resolved_config(train=[f"runtime.device={args.device}", f"checks.certify={args.certify}",
                                           *args.common, *o], data=args.data_set) for name, o in variants.items()}
    config["per_run"] = {"training.seed": args.seeds}
    out = save(args.name, config=config, result={"variants": variants, "seeds": args.seeds, "device": args.device, "parallel": args.parallel,
                           "common": args.common, "data": args.data_set, "certify": args.certify,
                           "summary": summary, "runs": runs, "sweep_wall_s": wall})
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / out.name).write_text(out.read_text())
    if len(runs) == len(variants) * len(args.seeds):
        for name, s in summary.items():
            print(f"{name:>16}: wrong {s['wrong']}, steps {s['steps']}, {s['stopped_by']}")


if __name__ == "__main__":
    main()
