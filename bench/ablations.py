#!/usr/bin/env python3
"""The ablation table: each row file in configs/ablations/ (a small YAML of overrides of the default
configs) against the default, for several seeds, each run capped by a time budget; then every saved
model's certificate, tokens per problem, training samples/s and decoding passes per answer.

    python3 bench/ablations.py                  # the whole table (make ablations), about 1 h 40 min on 2 CPU cores
    python3 bench/ablations.py --quick          # a smoke run of a few minutes, into runs/ablations-quick/
    python3 bench/ablations.py --rows baseline heads-1 --seeds 0
    python3 bench/ablations.py --report-only    # rebuild docs/ablations.md and .png from the results JSON

Resumable: each finished run goes into the results JSON at once (written atomically), so the same
command after a kill goes on with the runs not there yet; a row whose file changed runs again, and
so does a failed run.
Runs that need the same data or tokenizer share them (OUT/data/, OUT/tokenizers/); the runs
themselves are in OUT/rows/ROW/seedK/ (config, trainer log, metrics, model, certificate).
"""
import copy
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, commit, provenance

from hexadd.common import cli
from hexadd.experiments.reports import BUDGET, FAILED, SCHEDULE, STOPPED, markdown, summarize
from hexadd.experiments.ablations import BASELINE, Base, fingerprint, load_rows, without
from hexadd.config.files import to_dict
from hexadd.common.errors import ConfigError
from hexadd.common.io import atomic_open, write_json

# The table's scale, before any --set: operands 0..999 (10^6 problems; 100,000 of them drawn), a 1,000-step
# schedule, and smaller fresh samples at each evaluation and at the stopping gate (the 10^5 certificate
# is what reports the error). The default 0..9999 recipe needs 2,000-2,400 steps, about 5 min from launch
# on both cores here: 30 such runs would not fit in 2 h. At this scale the baseline stopped by its own rule
# at step 1,400 of a 1,500-step schedule, 240 s from launch with the default evaluation sizes (seed 0).
SCALE = ["data.numbers.max_operand=999", "data.problems.count=100000", "train.training.max_steps=1000",
         "train.checks.fresh_eval=2000", "train.checks.stop_gate=20000"]
BUDGET_S = 150
SEEDS = [0, 1, 2]
CERTIFY = 100_000
DECODE_SAMPLE = 2_000
# A short schedule that ends by itself on an idle machine; the budget is there for a busy one, where one
# thread also keeps its pace (two threads on two shared cores ran 5x slower than one here).
QUICK = {"seeds": [0], "budget": 60, "certify": 2_000, "decode_sample": 500,
         "set": ["data.problems.count=30000", "train.training.max_steps=100", "train.checks.eval_interval=50",
                 "train.runtime.threads=1"]}
GRACE_S = 120  # after SIGTERM: time to reach a step boundary (a stopping gate may be under way) and checkpoint
ENDED = re.compile(r"^stopped at step (\d+) by (.+)$", re.M)
INTERRUPTED = re.compile(r"interrupted: stopped at step (\d+)")
ERROR = re.compile(r"^error: (.+)$", re.M)


def parse(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--rows", nargs="+", metavar="ROW", help=f"only these rows: file names without .yaml, {BASELINE} for the default")
    p.add_argument("--seeds", nargs="+", type=int, help="training seeds (default 0 1 2; --quick: 0)")
    p.add_argument("--budget", type=float, metavar="SECONDS", help=f"per run, from launch (default {BUDGET_S}; --quick: {QUICK['budget']})")
    p.add_argument("--quick", action="store_true", help="smoke run: one seed, 30,000 problems, 100 steps "
                   "(at most 60 s) on one thread a run, 2,000-problem certificates; everything goes into OUT")
    p.add_argument("--out", help="runs, shared data and tokenizers (default runs/ablations; --quick: runs/ablations-quick)")
    p.add_argument("--results", help="results JSON (default bench/results/ablations.json; --quick: OUT/ablations.json)")
    p.add_argument("--docs", help="folder for ablations.md and ablations.png (default docs; --quick: OUT)")
    p.add_argument("--row-folder", default=str(ROOT / "configs" / "ablations"), help="the row files (default configs/ablations)")
    p.add_argument("--data-config", default=cli.default_config("data_config.yaml"))
    p.add_argument("--train-config", default=cli.default_config("train_config.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="data|train.SECTION.KEY=VALUE",
                   help="override one value for every row, after the table's own scale (" + ", ".join(SCALE) +
                        "), e.g. --set data.numbers.max_operand=9999 for the default range (repeatable)")
    p.add_argument("--certify", type=int, metavar="N", help=f"problems in each certificate (default {CERTIFY:,}; --quick: 2,000)")
    p.add_argument("--decode-sample", type=int, metavar="N",
                   help=f"problems decoded for tokens and passes per answer (default {DECODE_SAMPLE:,}; --quick: 500)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the table and figure from the results JSON")
    args = p.parse_args(argv)
    quick = QUICK if args.quick else {}
    args.seeds = args.seeds if args.seeds is not None else quick.get("seeds", SEEDS)
    args.budget = args.budget if args.budget is not None else quick.get("budget", BUDGET_S)
    args.certify = args.certify if args.certify is not None else quick.get("certify", CERTIFY)
    args.decode_sample = args.decode_sample if args.decode_sample is not None else quick.get("decode_sample", DECODE_SAMPLE)
    args.overrides = SCALE + quick.get("set", []) + args.overrides  # later ones win
    args.out = Path(args.out or ROOT / "runs" / ("ablations-quick" if args.quick else "ablations")).resolve()
    args.results = Path(args.results or (args.out / "ablations.json" if args.quick else ROOT / "bench/results/ablations.json")).resolve()
    args.docs = Path(args.docs or (args.out if args.quick else ROOT / "docs")).resolve()
    if min(args.seeds) < 0 or len(set(args.seeds)) != len(args.seeds):
        raise ConfigError(f"--seeds: distinct non-negative integers, got {args.seeds}")
    if args.budget <= 0 or args.certify < 1 or args.decode_sample < 1:
        raise ConfigError("--budget, --certify and --decode-sample must be positive")
    return args


def main(argv=None):
    args = parse(argv)
    if args.report_only:
        report(read_results(args.results, must_exist=True), args)
        return
    base = Base.load(args.data_config, args.train_config, args.overrides)
    rows = load_rows(args.row_folder, base, args.rows)  # every row file is checked before anything runs
    results = read_results(args.results)
    results["settings"] = {"row_folder": _shown(Path(args.row_folder)), "set": args.overrides,
                           "decode_sample": args.decode_sample, "results": _shown(args.results)}
    plan = []
    for row in rows:
        data_cfg, train_cfg = base.configs(row)
        fp = fingerprint(without(data_cfg, "output"), without(train_cfg, "data", "output", "hub"),
                         args.budget, args.certify, args.decode_sample)
        results["rows"][row.name] = {"label": row.label, "claim": row.claim, "source": _shown(Path(row.source)),
                                     "data": row.data, "train": row.train, "fingerprint": fp,
                                     # resolved, before the runner sets folders, seed and checks.certify=0
                                     "config": {"data": to_dict(data_cfg), "train": to_dict(train_cfg)}}
        plan += [(seed, row, data_cfg, train_cfg, fp) for seed in args.seeds]
    results["rows"] = dict(sorted(results["rows"].items(), key=lambda kv: (kv[0] != BASELINE, kv[0])))
    done = {(r["row"], r["seed"], r["fingerprint"]) for r in results["runs"] if r["outcome"] != FAILED}  # failures are retried
    todo = sorted((p for p in plan if (p[1].name, p[0], p[4]) not in done), key=lambda p: p[0])  # seed 0 of every row first
    print(f"{len(rows)} rows x {len(args.seeds)} seeds: {len(plan) - len(todo)} runs done, {len(todo)} to go, "
          f"{args.budget:.0f} s budget each; results in {_shown(args.results)}")
    t0 = time.perf_counter()
    for i, (seed, row, data_cfg, train_cfg, fp) in enumerate(todo, 1):
        data_dir = prepare_data(data_cfg, args.out)
        tok_dir = prepare_tokenizer(data_dir, train_cfg.tokenizer.vocab_size, args.out)
        record = run(row.name, seed, train_cfg, data_dir, tok_dir, args)
        record.update(row=row.name, seed=seed, fingerprint=fp)
        results["runs"] = [r for r in results["runs"] if (r["row"], r["seed"]) != (row.name, seed)] + [record]
        # The file's provenance is its last sitting's (each run keeps its own date and commit); the resolved
        # config of every row is under rows.ROW.config.
        results.update(provenance({"rows": "rows.ROW.config", "per_run": {"training.seed": "runs[].seed"}}))
        write_json(args.results, results)
        report(results, args)
        print(f"[{i}/{len(todo)}] {row.name} seed {seed}: {describe(record)} ({record['wall_s']:.0f} s)")
    if todo:
        print(f"{len(todo)} runs in {(time.perf_counter() - t0) / 60:.1f} min")
    report(results, args, show=True)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def read_results(path: Path, must_exist: bool = False) -> dict:
    if not path.is_file():
        if must_exist:
            raise ConfigError(f"{path}: no results yet; run the table first")
        return {"rows": {}, "runs": []}
    try:
        data = json.loads(path.read_text())
        if isinstance(data["rows"], dict) and isinstance(data["runs"], list):
            return data
    except (json.JSONDecodeError, KeyError, TypeError):
        pass
    raise ConfigError(f"{path}: not a results file of this runner; move it away or give --results")


def report(results: dict, args, show: bool = False) -> None:
    from hexadd.plots import ablation_figure
    text = markdown(results)
    with atomic_open(args.docs / "ablations.md") as f:
        f.write(text)
    summaries = summarize(results)
    if summaries:
        ablation_figure(summaries, args.docs / "ablations.png")
    if show:
        print(text)
        print(f"wrote {_shown(args.docs / 'ablations.md')} and ablations.png")


# ---------------------------------------------------------------- shared data and tokenizers

def prepare_data(data_cfg, out: Path) -> Path:
    """The data folder for this data config, generated once for every row and seed that needs it."""
    from hexadd.data.generate import generate
    from hexadd.data.dataset import CARD
    folder = out / "data" / fingerprint(without(data_cfg, "output"))
    if not (folder / CARD).is_file():  # the card is written last: present means complete
        data_cfg.output.dir = str(folder)
        s = generate(data_cfg)
        print(f"data: {s.train:,} training and {s.held_out:,} held-out problems, base {data_cfg.numbers.base} -> {_shown(folder)}")
    return folder


def prepare_tokenizer(data_dir: Path, vocab_size: int | None, out: Path) -> Path:
    from hexadd.data import dataset
    from hexadd.data.tokenizer import train_tokenizer
    folder = out / "tokenizers" / fingerprint(data_dir.name, vocab_size)
    if not (folder / "tokenizer.json").is_file():
        tok = train_tokenizer(dataset.load(data_dir)["train"]["text"][:], vocab_size)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tok.save_pretrained(str(tmp))
        tmp.replace(folder)  # whole or not at all
        print(f"tokenizer: {len(tok)} tokens -> {_shown(folder)}")
    return folder


# ---------------------------------------------------------------- one run

def run(name: str, seed: int, train_cfg, data_dir: Path, tok_dir: Path, args) -> dict:
    """Launch trainer.py, stop it at the budget, then measure the model it saved."""
    folder = args.out / "rows" / name / f"seed{seed}"
    train_cfg = copy.deepcopy(train_cfg)
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished earlier attempt starts over
    folder.mkdir(parents=True)
    train_cfg.data.dir, train_cfg.tokenizer.dir = str(data_dir), str(tok_dir)
    train_cfg.output.model_dir, train_cfg.output.run_dir = str(folder / "model"), str(folder / "run")
    train_cfg.training.seed, train_cfg.checks.certify = seed, 0  # the runner certifies every run the same way
    train_cfg.hub.push = False
    import yaml
    with atomic_open(folder / "train_config.yaml") as f:
        yaml.safe_dump(to_dict(train_cfg), f, sort_keys=False)
    log = folder / "trainer.log"
    t0 = time.perf_counter()
    proc = launch_trainer(folder / "train_config.yaml", folder, log)
    ended_s, hit = watch(proc, log, t0, args.budget)
    load = os.getloadavg()[0]  # the last minute of training: other work on the machine shows here
    text = log.read_text()
    metrics = [json.loads(line) for line in (folder / "run/metrics.jsonl").read_text().splitlines()
               ] if (folder / "run/metrics.jsonl").is_file() else []
    last = metrics[-1] if metrics else {}
    record = {"budget_s": args.budget, "exit": proc.returncode, "samples_per_s": last.get("samples_per_s"),
              "train_time_s": last.get("train_time_s"), "held_out_accuracy": last.get("accuracy"),
              "held_out_step": last.get("step"), "load_1min": round(load, 2), "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()) + " UTC"}
    ended = ENDED.search(text)
    if ended:
        record.update(outcome=STOPPED if ended[2] == "its stopping rule" else SCHEDULE, steps=int(ended[1]), time_s=ended_s)
    elif hit:
        stopped = INTERRUPTED.search(text)
        record.update(outcome=BUDGET, steps=int(stopped[1]) if stopped else last.get("step", 0), time_s=args.budget)
    else:
        error = ERROR.search(text)
        record.update(outcome=FAILED, error=error[1] if error else (text.strip().splitlines() or ["no output"])[-1])
    if record["outcome"] != FAILED and not (folder / "model/model.safetensors").is_file():
        record.update(outcome=FAILED, error=f"no model saved by step {record['steps']} (no evaluation yet)")
    if record["outcome"] != FAILED:
        record.update(measure(folder / "model", args.certify, args.decode_sample, train_cfg.runtime.device))
    record["wall_s"] = time.perf_counter() - t0
    record["commit"] = commit()
    return record


def launch_trainer(config: Path, folder: Path, log: Path) -> subprocess.Popen:
    """trainer.py in a process of its own (a row's crash or budget never stops the table), output to `log`."""
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, str(ROOT / "trainer.py"), "--config", str(config)], cwd=folder,
                                stdout=f, stderr=subprocess.STDOUT)


def watch(proc, log: Path, t0: float, budget: float) -> tuple[float | None, bool]:
    """Wait for the trainer; at the budget, SIGTERM it (it stops at a step boundary with a checkpoint).

    Returns the seconds from launch until its training loop ended on its own (the log's `stopped at
    step` line; after it the trainer only evaluates and saves, and is never cut), and whether the budget hit."""
    ended, hit, deadline = None, False, t0 + budget
    try:
        while proc.poll() is None:
            now = time.perf_counter()
            if ended is None and ENDED.search(log.read_text()):
                ended = now - t0
            if ended is None and not hit and now > deadline:
                proc.send_signal(signal.SIGTERM)
                hit = True
            if hit and now > deadline + GRACE_S:
                proc.kill()
            time.sleep(0.25)
    except KeyboardInterrupt:  # the runner is stopped: stop the trainer too, and record nothing for this run
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        raise
    if ended is None and ENDED.search(log.read_text()):  # it ended between two polls
        ended = time.perf_counter() - t0
    return ended, hit and ended is None


def measure(model_dir: Path, n: int, sample: int, device: str) -> dict:
    """The saved model's certificate, tokens per problem and forward passes per answer on a fixed sample."""
    from hexadd.verify.certificate import summary
    from hexadd.verify.certify import certify_distributed, operand_chunks
    from hexadd.inference.decoding import decode, default_mode
    from hexadd.common.devices import pick_device
    from hexadd.inference.loading import load_model
    from hexadd.data.numbers import format_problem
    from transformers.utils import logging
    logging.disable_progress_bar()

    model, tok = load_model(str(model_dir), device=pick_device(device))  # where it trained: a GPU certifies fast
    cert = certify_distributed(model, tok, n, seed=0, out_dir=model_dir)
    c = model.config
    a, b = next(operand_chunks(c.min_operand, c.max_operand, sample, seed=1, chunk=sample))
    pairs = list(zip(a.tolist(), b.tolist()))
    mode = default_mode(model)
    answers = decode(model, tok, pairs, mode, batch_size=1024)
    tokens = tok([format_problem(x, y, c.base, c.reverse) for x, y in pairs])["input_ids"]
    return {"certificate": summary(cert), "decode_mode": mode,
            "passes_per_answer": statistics.fmean(x.passes for x in answers),
            "tokens_per_problem": statistics.fmean(map(len, tokens)),
            "parameters": sum(p.numel() for p in model.parameters())}


def describe(r: dict) -> str:
    if r["outcome"] == FAILED:
        return f"failed: {r['error']}"
    held = "no evaluation" if r["held_out_accuracy"] is None else f"held-out {r['held_out_accuracy']:.2%}"
    how = {STOPPED: f"stopped by its rule at step {r['steps']:,}, {r['time_s']:.0f} s from launch",
           SCHEDULE: f"schedule ended at step {r['steps']:,}, {r['time_s']:.0f} s from launch, {held}",
           BUDGET: f"budget hit at step {r['steps']:,}, {held}"}[r["outcome"]]
    c = r["certificate"]
    return (f"{how}; certificate {c['wrong']:,} wrong of {c['n']:,}; {r['tokens_per_problem']:.1f} tokens/problem, "
            f"{r['samples_per_s']:,.0f} samples/s, {r['passes_per_answer']:.2f} passes/answer ({r['decode_mode']})")


def entry():
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill stops the trainer under way too
    cli.run(main)


if __name__ == "__main__":
    entry()
