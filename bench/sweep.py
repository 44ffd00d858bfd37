#!/usr/bin/env python3
"""Several any-length runs (lengthgen.py, configs/anylength.yaml) side by side, as parallel processes on one
device, each with its own overrides; their results (training, grid, certificate, bands) in one file. With
--exhaustive-best, then every problem of 0..9999 for the best run's model (fewest wrong: search, bands,
certificate, grid, then held-out): what a GPU does in two minutes and a CPU in hours.

    python3 bench/sweep.py --name anylength-sweep --device cuda --set lengthgen.bands=2500 \\
        --run heads2-seed0: --run heads2-seed1:training.seed=1 --run heads1-seed0:model.n_predict=1 --exhaustive-best
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, save


def summary(root: Path) -> dict:
    r = json.loads((root / "results.json").read_text())
    grid_wrong = r["all"]["total"] - r["all"]["correct"]
    out = {"grid": {"right": r["all"]["correct"], "total": r["all"]["total"], "wrong": grid_wrong,
                    "wrong_cells": [[c["digits_a"], c["digits_b"], c["total"] - c["correct"]] for c in r["grid"]
                                    if c["correct"] < c["total"]]},
           "training": r["training"], "certificate": r.get("certificate"), "seconds": r["seconds"],
           "config": r.get("config")}  # lengthgen's resolved config; moved into the file's config by main()
    if r.get("bands"):
        out["bands"] = [{k: x[k] for k in ("band", "n", "wrong", "upper_95", "seconds")} for x in r["bands"]["bands"]
                        if x["family"] == "all"]
        out["bands_wrong_by_family"] = [{k: x[k] for k in ("band", "family", "n", "wrong", "examples")}
                                        for x in r["bands"]["bands"] if x["family"] != "all" and x["wrong"]]
        out["locality"] = r["bands"]["locality"]
    metrics = [json.loads(line) for line in (root / "train" / "metrics.jsonl").read_text().splitlines()]
    out["curve"] = [{k: m[k] for k in ("step", "train_time_s", "head_losses", "accuracy", "errors") if k in m} for m in metrics]
    return out


def badness(s: dict) -> tuple:
    cert = s.get("certificate") or {}
    return (cert.get("search_wrong", 0) + cert.get("wrong", 0), sum(b["wrong"] for b in s.get("bands", [])),
            s["grid"]["wrong"], s["training"]["certificate"].get("search_wrong", 0) if s["training"].get("certificate") else 0,
            -s["training"]["best"]["accuracy"])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME:KEY=VALUE,KEY=VALUE",
                   help="one run: a name, then its overrides (comma-separated), e.g. heads1:model.n_predict=1")
    p.add_argument("--set", dest="common", action="append", default=[], help="an override for every run")
    p.add_argument("--device", default="auto")
    p.add_argument("--work", default=str(ROOT / "runs" / "sweep"))
    p.add_argument("--out", default=os.environ.get("OUT"), help="also copy results (and the best model) here")
    p.add_argument("--exhaustive-best", action="store_true")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for spec in args.run:
        name, _, sets = spec.partition(":")
        runs[name] = [s for s in sets.split(",") if s]
    procs, t0 = {}, time.time()
    for name, sets in runs.items():
        cmd = [sys.executable, str(ROOT / "lengthgen.py"), "--config", str(ROOT / "configs" / "anylength.yaml"),
               "--set", f"lengthgen.dir={work / name}", "--set", f"runtime.device={args.device}"]
        cmd += [a for s in [*args.common, *sets] for a in ("--set", s)]
        log = open(work / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}), cmd)
    result = {"device": args.device, "common": args.common, "runs": {}}
    configs = {}

    def record():
        out = save(args.name, result, config=configs)
        if args.out:
            shutil.copy(out, Path(args.out) / out.name)

    while procs:
        for name, (proc, cmd) in list(procs.items()):
            if proc.poll() is None:
                continue
            del procs[name]
            entry = {"overrides": runs[name], "command": " ".join(cmd[1:]), "exit": proc.returncode,
                     "wall_s": round(time.time() - t0, 1)}
            try:
                entry.update(summary(work / name))
                configs[name] = entry.pop("config")
            except (FileNotFoundError, KeyError, json.JSONDecodeError) as e:
                entry["error"] = f"{type(e).__name__}: {e}"
                entry["log_tail"] = (work / f"{name}.log").read_text()[-2000:]
            result["runs"][name] = entry
            print(f"{name}: exit {proc.returncode} after {entry['wall_s']} s", flush=True)
            record()
        time.sleep(5)
    done = {n: r for n, r in result["runs"].items() if "error" not in r}
    if args.exhaustive_best and done:
        best = min(done, key=lambda n: badness(done[n]))
        result["best"] = best
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "certify_all.py"), "--model", str(work / best / "model"),
                               "--range", "0", "9999", "--name", f"{args.name}-exhaustive", "--device", args.device]
                              + (["--out", args.out] if args.out else []), cwd=ROOT, capture_output=True, text=True)
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", flush=True)
        result["exhaustive"] = f"bench/results/{args.name}-exhaustive.json" if proc.returncode == 0 else proc.stderr[-1000:]
        if args.out:
            shutil.make_archive(str(Path(args.out) / f"{args.name}-best-model"), "gztar", work / best / "model")
    record()


if __name__ == "__main__":
    main()
