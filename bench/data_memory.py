#!/usr/bin/env python3
"""Peak memory and training speed of trainer.py on the default data, this tree against an earlier commit
(default: the last one that read the data as text files), side by side: each generates its own data and
tokenizer, then trains a few hundred steps; the runs alternate so machine noise hits both alike.

    python3 bench/data_memory.py [--baseline COMMIT] [--steps 300] [--repeats 2]

Peak RSS is the training process's maximum resident set (getrusage of the child): data loading,
training steps, evaluations and the closing decode evaluation included; certification is off (the same
code in both). The resident set is also polled every 20 ms, with the last log line before its peak,
to show which phase of the run the peak belongs to.
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

from common import ROOT, resolved_config, save

TEXT_DATA_COMMIT = "31c9719"


def sh(cmd, cwd, **kw):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed: {proc.stderr[-1500:]}")
    return proc


def prepare(tree: Path, work: Path):
    sh([sys.executable, str(tree / "data_generator.py"), "--config", str(tree / "data_config.yaml"),
        "--set", f"output.dir={work / 'data'}"], cwd=work)
    sh([sys.executable, str(tree / "tokenizer.py"), "--config", str(tree / "train_config.yaml"),
        "--set", f"data.dir={work / 'data'}", "--set", f"tokenizer.dir={work / 'tokenizer'}"], cwd=work)


def train(tree: Path, work: Path, steps: int, tag: str) -> dict:
    run_dir = work / f"run-{tag}"
    cmd = [sys.executable, str(tree / "trainer.py"), "--config", str(tree / "train_config.yaml"),
           "--set", f"data.dir={work / 'data'}", "--set", f"tokenizer.dir={work / 'tokenizer'}",
           "--set", f"output.model_dir={work / f'model-{tag}'}", "--set", f"output.run_dir={run_dir}",
           "--set", f"training.max_steps={steps}", "--set", "checks.certify=0", "--set", "checks.early_stop=false"]
    launched = time.time()
    log = work / f"trainer-{tag}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, text=True)
    watched = watch_rss(proc.pid, log)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        sys.exit(f"{tag}: trainer failed: {log.read_text()[-1500:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first = rows[0]
    return {"peak_rss_mb": usage.ru_maxrss / 1024, **watched, "samples_per_s": rows[-1]["samples_per_s"],
            # launch to the end of the first evaluation, less the optimizer steps: start-up and data loading
            "start_up_s": first["time"] - launched - first["train_time_s"]}


def watch_rss(pid: int, log: Path) -> dict:
    """Poll the trainer's resident set every 20 ms until it exits: the largest seen, and the last log
    line printed before it (which phase of the run the peak belongs to)."""
    peak, phase = 0, ""
    while True:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        if rss == 0 and "State:\tZ" in status:  # exited, not yet waited for
            break
        if rss > peak:
            lines = log.read_text().strip().splitlines()
            peak, phase = rss, lines[-1][:120] if lines else "(start-up, nothing printed yet)"
        time.sleep(0.02)
    return {"polled_peak_rss_mb": peak / 1024, "peak_after_line": phase}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default=TEXT_DATA_COMMIT)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_tree = tmp / "baseline-tree"
        sh(["git", "worktree", "add", "--detach", str(base_tree), args.baseline], cwd=ROOT)
        try:
            trees = {"baseline": base_tree, "this tree": ROOT}
            for name, tree in trees.items():
                (tmp / name).mkdir()
                prepare(tree, tmp / name)
            runs = {name: [] for name in trees}
            for i in range(args.repeats):
                for name, tree in trees.items():
                    runs[name].append(train(tree, tmp / name, args.steps, f"{i}"))
                    print(name, runs[name][-1], flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT)
    summary = {name: {k: statistics.median(r[k] for r in rs) for k, v in rs[0].items() if not isinstance(v, str)}
               for name, rs in runs.items()}
    ratio = summary["this tree"]["samples_per_s"] / summary["baseline"]["samples_per_s"]
    print(f"peak RSS {summary['baseline']['peak_rss_mb']:.0f} MB -> {summary['this tree']['peak_rss_mb']:.0f} MB; "
          f"training speed ratio {ratio:.3f}; start-up {summary['baseline']['start_up_s']:.1f}s -> "
          f"{summary['this tree']['start_up_s']:.1f}s (medians of {args.repeats})")
    # This tree's runs: data_config.yaml as is, the trainer with the overrides train() gives it.
    config = resolved_config(train=[f"training.max_steps={args.steps}", "checks.certify=0", "checks.early_stop=false"])
    save("data_memory", {"baseline": args.baseline, "steps": args.steps, "runs": runs, "median": summary,
                         "speed_ratio": ratio}, config=config)


if __name__ == "__main__":
    main()
