#!/usr/bin/env python3
"""Kill trainer.py with SIGKILL at random moments, resume each time, and check that the final weights are
byte-identical to an uninterrupted run with the same seed. Some kills are aimed at a checkpoint or a
best-model save (the moment a checkpoint-*/ or .model.saving/ folder appears).

    python3 bench/kill_resume.py --kills 6
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, resolved_config, save

DATA = ["numbers.base=10", "numbers.max_operand=99", "problems.exhaustive=true", "problems.held_out_fraction=0.1"]
MODEL = ["model.n_embd=64", "model.n_layer=2", "model.n_positions=16", "training.batch_size=64",
         "training.learning_rate=0.003", "training.max_steps=1200", "checks.eval_interval=50",
         "runtime.checkpoint_interval=50", "checks.early_stop=false", "checks.fresh_eval=2000",
         "checks.certify=0", "runtime.threads=1"]


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def trainer(work: Path, name: str, resume: bool) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "trainer.py"), "--config", str(ROOT / "train_config.yaml"),
            *sets(MODEL + [f"output.model_dir={name}/model", f"output.run_dir={name}/run"])]
    return subprocess.Popen(args + (["--resume"] if resume else []), cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"})


def wait_for_save(work: Path, name: str, proc, limit: float) -> str:
    """Poll until a checkpoint or best-model save is under way (or `limit` seconds pass)."""
    run, t0 = work / name / "run", time.perf_counter()
    before = {p.name for p in run.glob("checkpoint-*")} if run.is_dir() else set()
    while time.perf_counter() - t0 < limit and proc.poll() is None:
        if (work / name / ".model.saving").exists():
            return "during a best-model save"
        if run.is_dir() and {p.name for p in run.glob("checkpoint-*")} - before:
            return "during a checkpoint"
        time.sleep(0.002)
    return "at a random moment"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kills", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for script, cfg, extra in (("data_generator.py", "data_config.yaml", DATA), ("tokenizer.py", "train_config.yaml", [])):
            subprocess.run([sys.executable, str(ROOT / script), "--config", str(ROOT / cfg), *sets(extra)], cwd=work,
                           check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        t0 = time.perf_counter()
        full = trainer(work, "full", resume=False)
        if full.wait():
            sys.exit(full.stderr.read().decode())
        full_s = time.perf_counter() - t0
        kills, resume = [], False
        while True:
            proc = trainer(work, "killed", resume)
            if len(kills) < args.kills:
                aimed = len(kills) % 2 == 1  # every second kill waits for a save to start
                if aimed:
                    time.sleep(rng.uniform(4, 6))  # past start-up
                    when = wait_for_save(work, "killed", proc, full_s)
                else:
                    time.sleep(rng.uniform(4, full_s * 0.25))  # a resumed run restarts at its checkpoint
                    when = "at a random moment"
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    state = work / "killed" / "run" / "latest.json"
                    at = json.loads(state.read_text())["checkpoint"] if state.is_file() else "none yet"
                    kills.append({"when": when, "latest_checkpoint": at})
                    print(f"kill {len(kills)}: {when}; latest checkpoint {at}", flush=True)
                    resume = state.is_file()
                    continue
            if proc.wait():
                sys.exit(f"resumed run failed: {proc.stderr.read().decode()[-500:]}")
            break
        same = {}
        for f in ("run/checkpoint-1200/model.safetensors", "model/model.safetensors", "run/checkpoint-1200/optimizer.safetensors"):
            same[f] = (work / "full" / f).read_bytes() == (work / "killed" / f).read_bytes()
        steps = [json.loads(line)["step"] for line in (work / "killed" / "run" / "metrics.jsonl").read_text().splitlines()]
        same["metrics steps"] = steps == list(range(50, 1201, 50))
        print(f"{len(kills)} kills survived; byte-identical to the uninterrupted run: {same}")
        config = resolved_config(train=MODEL, data=DATA)  # output folders aside: the trainer's as it ran
        save("kill_resume", {"kills": kills, "identical": same, "uninterrupted_s": full_s}, config=config)
        if not all(same.values()):
            sys.exit(1)


if __name__ == "__main__":
    main()
