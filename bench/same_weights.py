"""Did a change leave training alone? Runs the default pipeline (data_generator.py, tokenizer.py, trainer.py, seed 0)
in a checkout of an earlier commit and in this tree, each in a scratch folder, and compares the saved weights
byte for byte (model.safetensors' SHA-256).

    python3 bench/same_weights.py --before 31aff11                 # the whole default run (early stop included)
    python3 bench/same_weights.py --before 31aff11 --steps 300     # its first 300 steps
"""
import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, resolved_config, save


def pipeline(tree: Path, work: Path, steps: int | None) -> dict:
    """The default run from `tree`'s scripts, every output under `work`; the weights' SHA-256 and the seconds."""
    py = sys.executable
    sets = ["--set", f"data.dir={work}/data", "--set", f"tokenizer.dir={work}/tokenizer",
            "--set", f"output.model_dir={work}/model", "--set", f"output.run_dir={work}/run"]
    if steps:
        sets += ["--set", f"training.max_steps={steps}"]
    t0 = time.perf_counter()
    for cmd in ([py, "data_generator.py", "--set", f"output.dir={work}/data"],
                [py, "tokenizer.py", *sets[:4]],
                [py, "trainer.py", *sets]):
        proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{tree}: {' '.join(cmd[1:2])} failed:\n{proc.stderr[-2000:]}")
    weights = (work / "model" / "model.safetensors").read_bytes()
    return {"sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights),
            "seconds": round(time.perf_counter() - t0, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="the earlier commit to compare with")
    p.add_argument("--steps", type=int, help="training.max_steps for both runs (default: the default schedule)")
    p.add_argument("--keep", type=Path, help="copy this tree's model folder here (default: it is removed)")
    p.add_argument("--name", default="same_weights")
    args = p.parse_args()
    before = subprocess.run(["git", "rev-parse", args.before], cwd=ROOT, capture_output=True, text=True)
    if before.returncode:
        sys.exit(f"--before {args.before}: not a commit of this repository")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "before"), args.before], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            runs = {"before": pipeline(tmp / "before", tmp / "work-before", args.steps),
                    "now": pipeline(ROOT, tmp / "work-now", args.steps)}
            if args.keep:
                shutil.copytree(tmp / "work-now" / "model", args.keep, dirs_exist_ok=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "before")], cwd=ROOT, capture_output=True)
    same = runs["before"]["sha256"] == runs["now"]["sha256"]
    print(f"{args.before} and this tree: weights {'byte-identical' if same else 'DIFFERENT'} "
          f"({runs['before']['sha256'][:16]} / {runs['now']['sha256'][:16]})")
    overrides = [f"training.max_steps={args.steps}"] if args.steps else []
    save(args.name, {"before": before.stdout.strip(), "steps": args.steps or "default schedule", "runs": runs,
                     "identical": same}, resolved_config(train=overrides))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
