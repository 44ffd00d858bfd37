"""Resumable checkpoints (safetensors + JSON, never pickle) and the atomic save of the best model.

A checkpoint records the model config and the schedule it was made with; resuming under a different
one is refused, naming the key, because the optimizer state and the data order would silently stop
meaning what they meant. torch is imported where it is used: the resume check runs before it loads.
"""
import json
import os
import shutil
from pathlib import Path

from ..common.errors import ConfigError, DataError
from ..config.schema import resume_keys
from ..common.io import normal_modes, write_json

LATEST = "latest.json"


def latest(run_dir: Path) -> Path | None:
    try:
        ckpt = run_dir / json.loads((run_dir / LATEST).read_text())["checkpoint"]
    except (FileNotFoundError, NotADirectoryError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return ckpt if (ckpt / "trainer_state.json").is_file() else None


def check_resumable(run_dir: Path, config: dict, what: str = "--resume",
                    restart: str = "start a new run without --resume") -> Path:
    """Before any data is loaded: the checkpoint exists and was made with the same model and schedule.
    `what` and `restart` name, in the errors, the option that resumes and how to start afresh instead."""
    ckpt = latest(run_dir)
    if ckpt is None:
        raise DataError(f"{what}: no checkpoint in {run_dir} ({restart})")
    try:
        saved = json.loads((ckpt / "trainer_state.json").read_text()).get("config")
    except json.JSONDecodeError:
        raise DataError(f"{what}: {ckpt}/trainer_state.json is malformed") from None
    if saved is None:
        raise DataError(f"{what}: {ckpt} was written by an older version; {restart}")
    for section, key in resume_keys():
        if key not in saved.get(section, {}):
            raise DataError(f"{what}: {ckpt} was written by an older version (no {section}.{key}); {restart}")
        then, now = saved[section][key], config[section][key]
        if then != now:
            raise ConfigError(f"{what}: {section}.{key} is {now!r} but the checkpoint in {run_dir} was "
                              f"trained with {then!r}; set it back, or {restart}")
    return ckpt


def save_checkpoint(run_dir: Path, step: int, model, optimizer, scheduler, state: dict, extra: dict) -> None:
    """Write checkpoint-{step}/ completely, then point latest.json at it; a kill leaves the previous one usable."""
    import torch
    from safetensors.torch import save_file
    ckpt = run_dir / f"checkpoint-{step}"
    shutil.rmtree(ckpt, ignore_errors=True)
    model.save_pretrained(ckpt)
    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous().cpu() for i, s in opt["state"].items() for k, v in s.items()}
    tensors["torch_rng_state"] = torch.get_rng_state()
    tensors.update({f"extra.{k}": v.contiguous().cpu() for k, v in extra.items()})
    save_file(tensors, ckpt / "optimizer.safetensors")
    write_json(ckpt / "trainer_state.json", {
        "step": step, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict(), **state})
    normal_modes(ckpt)
    write_json(run_dir / LATEST, {"checkpoint": ckpt.name})
    for old in run_dir.glob("checkpoint-*"):  # also any left by a run killed mid-save
        if old != ckpt:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(ckpt: Path, model, optimizer, scheduler) -> tuple[int, dict, dict]:
    """Restore weights (strictly), optimizer, schedule and RNG; returns (step, trainer state, extra tensors)."""
    import torch
    from safetensors.torch import load_file
    weights = load_file(ckpt / "model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embedding, stored once
    if missing or unexpected:
        raise DataError(f"--resume: {ckpt} does not match this model ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected tensors)")
    model.tie_weights()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    tensors = load_file(ckpt / "optimizer.safetensors")
    torch.set_rng_state(tensors.pop("torch_rng_state"))
    extra = {k.split(".", 1)[1]: tensors.pop(k) for k in [k for k in tensors if k.startswith("extra.")]}
    opt_state = {}
    for key, v in tensors.items():  # load_state_dict moves them to the parameters' device
        i, name = key.split(".", 1)
        opt_state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    return state["step"], state, extra


def save_model(model, tok, model_dir: Path, extra_files: dict[str, Path] | None = None) -> None:
    """Save weights, config and tokenizer into a scratch folder, then move each file into place atomically."""
    tmp = model_dir.parent / f".{model_dir.name}.saving"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    for name, src in (extra_files or {}).items():
        if src.is_file():
            shutil.copyfile(src, tmp / name)
    normal_modes(tmp)
    model_dir.mkdir(parents=True, exist_ok=True)
    for f in tmp.iterdir():
        os.replace(f, model_dir / f.name)
    tmp.rmdir()
