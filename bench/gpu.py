#!/usr/bin/env python3
"""GPU benchmark (runs only where CUDA is present): for the default config and the 6.4M preset, time from
launching trainer.py to its first 100% held-out and to its own stop, samples/s, the trainer's certificate,
then certification throughput (every problem for the default model, a large sample for the 6.4M one).

    python3 bench/gpu.py [--out DIR] [--exhaustive-6m]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, resolved_config, save


def run(cmd, **kw):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, **kw)
    return proc, time.perf_counter() - t0


def train(name, config, work: Path, device: str, extra=()):
    model_dir, run_dir = work / f"model-{name}", work / f"run-{name}"
    sets = ["--config", str(config), "--set", f"data.dir={work / 'data'}", "--set", f"tokenizer.dir={work / 'tokenizer'}",
            "--set", f"output.model_dir={model_dir}", "--set", f"output.run_dir={run_dir}", "--set", f"runtime.device={device}",
            "--set", "checks.certify=1000000", *extra]
    launched = time.time()
    proc, wall = run(["trainer.py", *sets])
    print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", flush=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] if (run_dir / "metrics.jsonl").is_file() else []
    first = next((r for r in rows if r["accuracy"] >= 1.0), None)
    cert = json.loads((model_dir / "certificate.json").read_text()) if (model_dir / "certificate.json").is_file() else None
    return model_dir, {
        "exit": proc.returncode, "process_wall_s": wall, "steps": rows[-1]["step"] if rows else None,
        "samples_per_s": rows[-1]["samples_per_s"] if rows else None,
        "wall_to_first_100_held_out_s": first["time"] - launched if first else None,
        "wall_to_stop_s": rows[-1]["time"] - launched if rows else None,
        "certificate_1e6": {k: cert[k] for k in ("n", "wrong", "upper_95", "problems_per_s")} if cert else None}


def certify(model_dir, what, device):
    proc, wall = run(["inference.py", "--model", str(model_dir), "--certify", what, "--device", device,
                      "--batch-size", "100000", "--eval-dir", str(model_dir / f"cert-{what}")])
    print(proc.stdout[-2000:], proc.stderr[-1000:], sep="\n", flush=True)
    path = model_dir / f"cert-{what}" / "certificate.json"
    if not path.is_file():
        return {"exit": proc.returncode}
    c = json.loads(path.read_text())
    return {"n": c["n"], "wrong": c["wrong"], "exhaustive": c["exhaustive"], "upper_95": c["upper_95"],
            "seconds": c["seconds"], "problems_per_s": c["problems_per_s"], "command_wall_s": wall,
            "examples": c["examples"][:5]}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", help="also copy the results JSON here")
    p.add_argument("--sample-6m", default="10000000", help="--certify argument for the 6.4M model (all: every problem)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="trainer.py --set for both runs")
    p.add_argument("--default-set", action="append", default=[], help="trainer.py --set for the default run only")
    p.add_argument("--name", default="gpu", help="results file name under bench/results/")
    p.add_argument("--dry-run", action="store_true", help="the same stages on the CPU with a tiny problem set and few steps")
    args = p.parse_args()
    import torch
    if not torch.cuda.is_available() and not args.dry_run:
        sys.exit("no CUDA GPU here: this benchmark runs only where one is present")
    device = "cpu" if args.dry_run else "cuda"
    data_sets, train_sets = [], []
    if args.dry_run:
        data_sets = ["--set", "numbers.max_operand=99", "--set", "problems.exhaustive=true"]
        train_sets = ["--set", "training.max_steps=60", "--set", "checks.eval_interval=30", "--set", "model.n_layer=1",
                      "--set", "checks.certify=2000"]
        args.sample_6m = "2000"
    train_sets += [a for o in args.overrides for a in ("--set", o)]
    result = {"overrides": args.overrides, "default_overrides": args.default_set, "gpu": torch.cuda.get_device_name(0) if not args.dry_run else "none (dry run)", "torch": torch.__version__}
    plain = [s for s in train_sets if s != "--set"]
    data_plain = [s for s in data_sets if s != "--set"]
    common = ["checks.certify=1000000", f"runtime.device={device}"]
    config = {"default": resolved_config(train=common + plain + args.default_set, data=data_plain),
              "6.4M": resolved_config(train=common + plain, data=data_plain,
                                      train_file=ROOT / "configs" / "reference-6.4M.yaml")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for cmd in (["data_generator.py", "--set", f"output.dir={work / 'data'}", *data_sets],
                    ["tokenizer.py", "--set", f"data.dir={work / 'data'}", "--set", f"tokenizer.dir={work / 'tokenizer'}"]):
            proc, _ = run(cmd)
            if proc.returncode:
                sys.exit(proc.stderr)

        def stage(key, fn):
            try:
                result[key] = fn()
            except Exception as e:  # keep what the other stages measured
                result[key] = {"error": f"{type(e).__name__}: {e}"}
            print(key, json.dumps(result[key])[:600], flush=True)
            out = save(args.name if not args.dry_run else "gpu-dry-run", result, config=config)
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                (Path(args.out) / f"{args.name}.json").write_text(out.read_text())

        models = {}

        def train_default():
            models["default"], r = train("default", ROOT / "train_config.yaml", work, device,
                                         train_sets + [a for o in args.default_set for a in ("--set", o)])
            return r

        def train_6m():
            models["6.4M"], r = train("6.4M", ROOT / "configs" / "reference-6.4M.yaml", work, device, train_sets)
            return r

        stage("train_default", train_default)
        stage("certify_default_all", lambda: certify(models["default"], "all", device))
        stage("train_6.4M", train_6m)
        if args.sample_6m != "none":
            stage("certify_6.4M", lambda: certify(models["6.4M"], args.sample_6m, device))
    print(json.dumps({"machine": machine(), **result}, indent=1))


if __name__ == "__main__":
    main()
