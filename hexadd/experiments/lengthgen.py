"""Length generalization in one command: train on short numbers, then add numbers up to four times longer.

One config (configs/anylength.yaml) holds the data sections (`numbers`, `problems`), the training
sections (`model`, `training`, `checks`, `runtime`) and `lengthgen` (the grid). The run generates the data, builds the
tokenizer, trains through the usual trainer and measures exact match on every pair of operand lengths
1..max_digits, writing under `lengthgen.dir`: data/, tokenizer/, model/ (a normal model folder),
train/ (checkpoints, metrics), grid_cells.json, results.json and accuracy_by_length.png. A step
already done is skipped, so a stopped run continues with the same command: training from its last
checkpoint, the grid from its last measured cell.
"""
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..modeling.schemes import SCHEMES
from ..config.schema import (ChecksConfig, DataConfig, DataOutputConfig, ModelConfig, RuntimeConfig, NumbersConfig, ProblemsConfig,
                     TokenizerConfig, TrainConfig, TrainDataConfig, TrainingConfig, TrainOutputConfig)
from ..config.files import to_dict
from ..common.errors import ConfigError, DataError
from ..common.io import write_json
from ..data.numbers import num_digits
from ..train.checkpoints import check_resumable, latest
from ..data.generate import generate
from ..data.dataset import read_card
from ..common.devices import pick_device

RESULTS, CELLS, PROGRESS, FIGURE = "results.json", "grid_cells.json", "progress.json", "accuracy_by_length.png"
FACTORS = (2, 3, 4)


@dataclass
class GridConfig:
    dir: str = "runs/lengthgen"  # everything the run writes
    max_digits: int = 32         # the grid: operand lengths 1..max_digits for each operand
    per_cell: int = 100          # fresh problems per pair of lengths
    diagonal: int = 1000         # ... where both operands have the same length (2x, 3x, 4x are read there)
    seed: int = 0
    batch_size: int = 512        # problems per forward pass
    certify: int = 1_000_000     # then problems sampled uniformly from certify_range, with the error search (0: none)
    certify_range: list[int] = field(default_factory=lambda: [0, 9999])
    bands: int = 0               # and (block-window models) this many problems a family in each band of lengths

    def validate(self, at):
        for key in ("max_digits", "per_cell", "diagonal", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{at}.{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("certify", "bands"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{at}.{key}: must be >= 0, got {getattr(self, key)}")
        if len(self.certify_range) != 2 or not 0 <= self.certify_range[0] <= self.certify_range[1]:
            raise ConfigError(f"{at}.certify_range: must be [lo, hi] with 0 <= lo <= hi, got {self.certify_range}")


@dataclass
class LengthgenConfig:
    numbers: NumbersConfig = field(default_factory=NumbersConfig)
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    lengthgen: GridConfig = field(default_factory=GridConfig)

    @property
    def trained(self) -> tuple[int, int]:
        """The trained operand lengths, in digits."""
        n = self.numbers
        return num_digits(n.min_operand, n.base), num_digits(n.max_operand, n.base)

    def validate(self, at):
        top, longest = self.lengthgen.max_digits, self.trained[1]
        if top < longest:
            raise ConfigError(f"lengthgen.max_digits: {top} is shorter than the trained operands ({longest} digits)")
        # The grid's longest answer has top + 1 digits: block position top + 1 (or the whole sequence's length).
        need = SCHEMES[self.model.positions].positions_for(top, top)
        if need is not None and self.model.n_positions < need:
            raise ConfigError(f"model.n_positions: {self.model.n_positions} cannot hold the grid's longest problem "
                              f"({top}-digit operands); need at least {need}")
        if self.lengthgen.bands and not SCHEMES[self.model.positions].windowed:
            raise ConfigError("lengthgen.bands: only a block-window model (model.positions block_relative) runs at any length")

    def data(self) -> DataConfig:
        return DataConfig(self.numbers, self.problems, DataOutputConfig(f"{self.lengthgen.dir}/data"))

    def train(self) -> TrainConfig:
        d = self.lengthgen.dir
        return TrainConfig(data=TrainDataConfig(f"{d}/data"), tokenizer=TokenizerConfig(None, f"{d}/tokenizer"),
                           model=self.model, training=self.training, checks=self.checks, runtime=self.runtime,
                           output=TrainOutputConfig(model_dir=f"{d}/model", run_dir=f"{d}/train"))


def untrained_positions(cfg: LengthgenConfig) -> str | None:
    """A note when the grid reaches block positions that training never shifts the numbers onto."""
    trained = cfg.trained[1] + 1 + cfg.model.max_offset  # the longest training answer, shifted furthest
    needed = cfg.lengthgen.max_digits + 1
    scheme = SCHEMES[cfg.model.positions]
    if scheme.block and scheme.table is not None and trained < needed:  # no table: only distances reach it
        return (f"note: training reaches block position {trained}, the grid needs {needed}: positions "
                f"{trained + 1}..{needed} keep their initial embeddings (model.max_offset >= {needed - cfg.trained[1] - 1} trains them)")
    return None


# ---------------------------------------------------------------- the run

def run(cfg: LengthgenConfig, log=print) -> dict:
    """Every step not yet done, then results.json, the heatmap and the summary lines."""
    from filelock import FileLock, Timeout

    root = Path(cfg.lengthgen.dir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        lock = FileLock(root / ".lengthgen.lock", blocking=False).acquire()
    except Timeout:
        raise ConfigError(f"{root} is in use by another lengthgen run; wait for it, or set lengthgen.dir") from None
    with lock:
        if (note := untrained_positions(cfg)) is not None:
            log(note)
        progress = _read_json(root / PROGRESS) or {"seconds": {}}

        def step(name, fn):
            t0 = time.perf_counter()
            try:
                return fn()
            except KeyboardInterrupt:
                raise KeyboardInterrupt(f"stopped during {name}; run the same command again to continue "
                                        "(training resumes from its last checkpoint)") from None
            finally:
                progress["seconds"][name] = round(progress["seconds"].get(name, 0) + time.perf_counter() - t0, 1)
                write_json(root / PROGRESS, progress)

        step("data", lambda: _data(cfg, root, log))
        step("tokenizer", lambda: _tokenizer(cfg))
        training = step("training", lambda: _train(cfg, root, log))
        cells = step("grid", lambda: _grid(cfg, root, log))
        certificate = step("certificate", lambda: _certificate(cfg, root, log))
        bands = step("bands", lambda: _bands(cfg, root, log))
        return _results(cfg, root, cells, training, progress["seconds"], log, certificate, bands)


def _data(cfg: LengthgenConfig, root: Path, log) -> None:

    data = cfg.data()
    try:
        have = read_card(data.output.dir).get("config")
    except DataError:  # none yet, or an older layout: generate
        have = None
    if have == to_dict(data):
        return
    if latest(root / "train") is not None:
        key = _first_difference(have or {}, to_dict(data)) or "numbers"
        raise ConfigError(f"{key}: {root} was trained on other data; set it back, remove {root}, or set lengthgen.dir")
    s = generate(data)
    lo, hi = cfg.trained
    log(f"data: {s.train:,} training and {s.held_out:,} held-out problems, operands of {lo}..{hi} digits "
        f"(base {cfg.numbers.base}), in {s.out_dir}/")


def _tokenizer(cfg: LengthgenConfig) -> None:
    from ..data.tokenizer import train_tokenizer

    out = Path(cfg.train().tokenizer.dir)
    if not (out / "tokenizer.json").is_file():
        # One token per character: the alphabet alone fixes it, whatever the data.
        train_tokenizer([]).save_pretrained(str(out))


def _train(cfg: LengthgenConfig, root: Path, log) -> dict:

    train_cfg = cfg.train()
    run_dir, done = Path(train_cfg.output.run_dir), root / "training.json"
    resume = latest(run_dir) is not None
    if resume:  # the same model and schedule, or a clear refusal before anything loads
        check_resumable(run_dir, to_dict(train_cfg), what="lengthgen",
                        restart=f"remove {root} (or set lengthgen.dir) to start again")
    if done.is_file() and resume:
        return json.loads(done.read_text())
    from transformers.utils import logging
    logging.disable_progress_bar()
    from ..train.loop import train

    t0 = time.perf_counter()
    r = train(train_cfg, resume=resume, log=log)
    summary = {"steps": r["steps"], "train_time_s": round(r["train_time_s"], 1), "parameters": r["parameters"],
               "samples_per_s": round(r["samples_per_s"], 1), "stopped_by": r["stopped_by"], "best": r["best"],
               "certificate": r["certificate"], "resumed": resume, "last_session_s": round(time.perf_counter() - t0, 1)}
    write_json(done, summary)
    return summary


def _grid(cfg: LengthgenConfig, root: Path, log) -> dict:
    from ..verify.grids import grid_accuracy, from_json, grid_cells, to_json
    from ..inference.loading import load_model

    g = cfg.lengthgen
    model_dir = root / "model"
    model, tok = load_model(str(model_dir), device=pick_device(cfg.runtime.device))
    # The cells measured so far count only for these weights and this grid.
    key = {"weights_sha256": hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest(),
           "max_digits": g.max_digits, "per_cell": g.per_cell, "diagonal": g.diagonal, "seed": g.seed}
    saved = _read_json(root / CELLS) or {}
    done = from_json(saved["cells"]) if saved.get("key") == key else {}
    if done:
        log(f"grid: {len(done)} cells measured before, continuing")

    def save(cells):
        write_json(root / CELLS, {"key": key, "cells": to_json(cells)})

    cells = grid_cells(g.max_digits, g.per_cell, g.diagonal)
    return grid_accuracy(model, tok, cells, g.seed, g.batch_size, done, save, log)


def _model_key(root: Path) -> str:
    """The weights a measurement was made on: one made on other weights is made again."""
    return hashlib.sha256((root / "model" / "model.safetensors").read_bytes()).hexdigest()


def _certificate(cfg: LengthgenConfig, root: Path, log) -> dict | None:
    """certificate.json in the model folder: a uniform sample of certify_range with the error search."""
    from ..verify import certificate
    from ..verify.certify import certify
    from ..inference.loading import load_model

    g = cfg.lengthgen
    if not g.certify:
        return None
    path, key = root / "model" / certificate.CERTIFICATE_FILE, _model_key(root)
    have = _read_json(path)
    lo, hi = g.certify_range
    if have and have.get("weights_sha256") == key and have.get("n") == g.certify and [have["min_operand"], have["max_operand"]] == [lo, hi]:
        return certificate.summary_of(have)
    model, tok = load_model(str(root / "model"), device=pick_device(cfg.runtime.device))
    cert = certify(model, tok, g.certify, seed=g.seed, wrong_path=root / "model" / certificate.WRONG_FILE,
                   search_rounds=10, operands=(lo, hi))
    certificate.save(cert, root / "model", extra={"weights_sha256": key})
    log(certificate.report(cert))
    return certificate.summary(cert)


def _bands(cfg: LengthgenConfig, root: Path, log) -> dict | None:
    """bands.json in the model folder: the any-length certificate and the locality measurement."""
    from ..verify.bands import BANDS_FILE, certify_bands, locality, report, save_bands
    from ..inference.loading import load_model

    g = cfg.lengthgen
    if not g.bands:
        return None
    key = _model_key(root)
    have = _read_json(root / "model" / BANDS_FILE)
    if have and have.get("weights_sha256") == key and have.get("per_family") == g.bands:
        return have
    model, tok = load_model(str(root / "model"), device=pick_device(cfg.runtime.device))
    result = {"per_family": g.bands, "seed": g.seed, "weights_sha256": key,
              "bands": certify_bands(model, tok, g.bands, seed=g.seed, log=log), "locality": locality(model, tok)}
    save_bands(result, root / "model")
    log(report(result))
    return result


def _results(cfg: LengthgenConfig, root: Path, cells: dict, training: dict, seconds: dict, log,
             certificate: dict | None = None, bands: dict | None = None) -> dict:
    from ..verify.grids import summarize, to_json
    from ..plots import length_grid

    g, (lo, hi) = cfg.lengthgen, cfg.trained
    summary = summarize(cells, (lo, hi), g.max_digits)
    results = {"trained_digits": [lo, hi], "max_digits": g.max_digits, "base": cfg.numbers.base,
               "method": "teacher-forced head-1 argmax at every answer token (= greedy decoding); fresh problems "
                         "uniform over the numbers of each length",
               **summary, "seconds": {**seconds, "total": round(sum(seconds.values()), 1)}, "training": training,
               "certificate": certificate, "bands": bands,
               "config": to_dict(cfg), "grid": to_json(cells)}
    write_json(root / RESULTS, results)
    marks = [f * hi for f in FACTORS]
    title = (f"exact match by operand length, trained on {lo}..{hi} digits (outlined)\n"
             + ", ".join(f"{m['factor']}x: {m['accuracy']:.0%}" for m in summary["multiples"]))
    length_grid({k: c.accuracy for k, c in cells.items()}, g.max_digits, (lo, hi), cfg.numbers.base, title,
                root / FIGURE, marks)
    for line in report(results):
        log(line)
    log(f"wrote {root / RESULTS} and {root / FIGURE}")
    return results


def report(results: dict) -> list[str]:
    lo, hi = results["trained_digits"]
    r, s = results["in_range"], results["seconds"]
    lines = [f"length generalization (base {results['base']}, exact match = greedy decoding, fresh problems):",
             f"  trained lengths {lo}..{hi} x {lo}..{hi}: {r['accuracy']:.2%} ({r['correct']:,}/{r['total']:,})"]
    for m in results["multiples"]:
        lines.append(f"  {m['factor']}x the trained length, {m['digits']}+{m['digits']} digits: "
                     f"{m['accuracy']:.2%} ({m['correct']:,}/{m['total']:,})")
    lines.append("  by the longer operand's digits: " + ", ".join(
        f"{x['digits']}: {x['accuracy']:.0%}" for x in results["by_longer_operand"]))
    if c := results.get("certificate"):
        lines.append(f"  certificate: {c['n'] - c['wrong']:,}/{c['n']:,} right on a uniform sample of "
                     f"{c['min_operand']}..{c['max_operand']}, 95% upper bound {c['upper_95']:.2g}"
                     + (f"; its error search found {c['search_wrong']:,} wrong" if "search_wrong" in c else ""))
    if b := results.get("bands"):
        from ..verify.bands import summary
        lines.append("  bands (fresh problems, 4 families): " + ", ".join(
            f"{r['band'][0]}..{r['band'][1]}: {r['wrong']}/{r['n']} wrong" for r in summary(b["bands"])))
    lines.append(f"  took {s['total'] / 60:.1f} min (" + ", ".join(f"{k} {v:.0f} s" for k, v in s.items() if k != "total") + ")")
    return lines


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _first_difference(have: dict, want: dict, at: str = "") -> str | None:
    """The first key (section.key) whose value differs."""
    for key in want:
        if isinstance(want[key], dict) and isinstance(have.get(key), dict):
            if found := _first_difference(have[key], want[key], f"{at}{key}."):
                return found
        elif have.get(key) != want[key]:
            return f"{at}{key}"
    return None
