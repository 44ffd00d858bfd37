"""Optional experiment tracking (`runtime.log_with`): every evaluation record, at its step, and the
resolved config as hyperparameters, through Accelerate's tracker classes. TensorBoard writes event
files to `<run_dir>/tensorboard/`; Weights & Biases writes its run to `<run_dir>/wandb/`, offline
unless the user configured it (WANDB_MODE or WANDB_API_KEY).

The tracker is built here, on the main process, instead of by `Accelerator(log_with=...)`: a
one-process run has no Accelerator (it costs seconds of start-up), and `Accelerator.end_training`
would also destroy the process group that the final certification still uses.
"""
import importlib.util
import json
import os
import shutil
from pathlib import Path

from ..common.errors import ConfigError

INSTALL = {"tensorboard": "pip install tensorboard==2.21.0", "wandb": "pip install wandb"}
TENSORBOARD_DIR = "tensorboard"
PROJECT = "hexadd"


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_available(log_with: str) -> None:
    """A tracker whose package is missing is refused before any work."""
    if log_with != "none" and not installed(log_with):
        raise ConfigError(f"runtime.log_with: {log_with} is not installed; run `{INSTALL[log_with]}`, "
                          "or set runtime.log_with=none")


def hyperparameters(config: dict, prefix: str = "") -> dict:
    """The config flattened to `section.key` scalars: TensorBoard's hparams take neither dicts nor None."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(hyperparameters(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return flat


def scalars(record: dict) -> dict:
    """An evaluation record under its metrics.jsonl names; a list of per-head values becomes name/1, name/2, ..."""
    out = {}
    for key, value in record.items():
        if key in ("step", "time"):
            continue
        if isinstance(value, list):
            out.update({f"{key}/{j}": v for j, v in enumerate(value, 1)})
        else:
            out[key] = value
    return out


class Tracker:
    """The run's tracker; with log_with none (and on every process but the main one) it does nothing."""

    def __init__(self, log_with: str, run_dir: Path, config: dict, run_id: str, step: int):
        self.tracker = None
        if log_with == "none":
            return
        check_available(log_with)
        from accelerate import PartialState
        from accelerate.tracking import TensorBoardTracker, WandBTracker
        # The trackers log through Accelerate's multi-process logger, which needs its process state: a launched
        # run has it already; for one process this records one CPU process, and touches no device.
        PartialState(cpu=True)
        if log_with == "tensorboard":
            if step == 0:  # a new run starts a new record, as metrics.jsonl does
                shutil.rmtree(run_dir / TENSORBOARD_DIR, ignore_errors=True)
            # A resumed run: TensorBoard drops what the interrupted one logged after the checkpoint.
            tracker = TensorBoardTracker(TENSORBOARD_DIR, run_dir, purge_step=step + 1 if step else None)
        else:
            configured = "WANDB_MODE" in os.environ or "WANDB_API_KEY" in os.environ
            # One id per run, kept in its checkpoints: a resumed run continues the same wandb run.
            tracker = WandBTracker(PROJECT, name=Path(run_dir).resolve().name, id=run_id, resume="allow",
                                   dir=str(run_dir), **({} if configured else {"mode": "offline"}))
        tracker.start()
        tracker.store_init_configuration(hyperparameters(config))
        self.tracker = tracker

    def log(self, record: dict) -> None:
        if self.tracker is not None:
            self.tracker.log(scalars(record), step=record["step"])

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.finish()
            self.tracker = None
