"""The training loop: answer-only loss for every head, evaluation on held-out and fresh problems,
replay of the model's errors, a stopping rule a certificate agrees with, and resumable checkpoints.

One process, or several through Hugging Face Accelerate (`accelerate launch` on GPUs, `torchrun` on
CPUs): `training.batch_size` is the global batch, each process takes every world-th row of it,
evaluations are split across processes and summed, and only the main process writes files.
What each evaluation measures, and the stopping gate, are in monitor.py.
"""
import contextlib
import dataclasses
import shutil
import signal
import time
import uuid
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from .averaging import WeightAverage
from .checkpoints import check_resumable, load_checkpoint, save_checkpoint, save_model
from ..config.schema import TrainConfig
from ..config.files import to_dict
from ..data.dataset import resolve
from ..data.encoding import encode_pairs, pad_to
from ..common.errors import ConfigError
from ..common.io import atomic_open
from .monitor import METRICS_FILE, append_metrics, describe, evaluation, gate, is_clean, truncate_metrics
from .mixture import Draw, Replay, batch_pairs, check as check_mixture
from .prepare import Setup, make_accelerator, prepare
from .tracking import Tracker, check_available
from ..verify import certificate, certify
from ..inference.decoding import default_mode
from ..verify.evaluation import evaluate_file, report, write_outputs
from ..inference.loading import load_model
from ..inference.attention import problem_attention
from ..plots import training_curves

LOCK_FILE = ".trainer.lock"


# ---------------------------------------------------------------- one step

def batch_tensors(run: Setup, replay: Replay, step: int, t):
    """This process's rows of global batch `step`: rows of the training file, then each other row kind's share
    (mixture.py: replayed errors, rows drawn anew)."""
    idx = run.batches(step)
    split = run.train_split
    c = run.model.config
    pairs = batch_pairs(t.mixture, len(idx), Draw(c.min_operand, c.max_operand, c.base, t.seed, replay), step)
    idx = idx[:len(idx) - len(pairs)].to(split.input_ids.device)
    ids, mask, labels = split.input_ids[idx], split.attention_mask[idx], split.labels[idx]
    if len(pairs):
        pairs = pairs.to(split.input_ids.device)
        enc = encode_pairs(run.tok, run.encoder, pairs[:, 0], pairs[:, 1], c.base, c.reverse)
        width = max(ids.shape[1], enc.input_ids.shape[1])
        pad = run.tok.pad_token_id
        ids = torch.cat([pad_to(ids, width, pad), pad_to(enc.input_ids, width, pad)])
        mask = torch.cat([pad_to(mask, width, 0), pad_to(enc.attention_mask, width, 0)])
        labels = torch.cat([pad_to(labels, width, -100), pad_to(enc.labels, width, -100)])
    acc = run.accelerator
    rows = slice(acc.process_index, None, acc.num_processes)
    return ids[rows].to(run.device), mask[rows].to(run.device), labels[rows].to(run.device)


def weighted_loss(head_losses: torch.Tensor, head_weight: float) -> torch.Tensor:
    """Head 1's loss and each later head's at `head_weight`, as a weighted mean (1.0: the plain mean).

    Only head 1 decides an answer; the later heads draft. At equal weight their loss pulls the shared
    trunk as hard as head 1's does, which slows head 1 on a short budget (README: training.head_weight)."""
    w = torch.full_like(head_losses, head_weight)
    w[0] = 1.0
    return (w * head_losses).sum() / w.sum()


def train_step(run: Setup, ids, mask, labels, grad_clip: float, head_weight: float, scaler=None):
    """One optimizer step on one batch."""
    with run.autocast():
        out = run.ddp_model(ids, attention_mask=mask, labels=labels)
    loss = weighted_loss(out.head_losses, head_weight)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(run.optimizer)
    else:
        loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(run.optimizer)
        scaler.update()
    else:
        run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return out


# ---------------------------------------------------------------- the loop

def run_lock(run_dir: Path):
    """One trainer per run folder: a second one is refused; the OS drops the lock when the process ends, however."""
    from filelock import FileLock, Timeout
    lock = FileLock(run_dir / LOCK_FILE, blocking=False)
    try:
        return lock.acquire()  # a context that releases it once (`with lock` on the lock itself would count twice)
    except Timeout:
        raise ConfigError(f"{run_dir} is in use by another trainer; wait for it, or set output.run_dir") from None


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, log=print) -> dict:
    """Train per `cfg`; `stop_after` ends the run early at that step, with a checkpoint to resume from."""
    data_dir, model_dir, run_dir = resolve(cfg.data), Path(cfg.output.model_dir), Path(cfg.output.run_dir)
    config = to_dict(cfg)
    check_mixture(cfg.training, cfg.checks)
    ckpt = check_resumable(run_dir, config) if resume else None  # before any data is loaded
    check_available(cfg.runtime.log_with)
    accelerator = make_accelerator(cfg.runtime.device)
    main = accelerator.is_main_process
    lock = contextlib.nullcontext()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = run_lock(run_dir)
    with lock:
        return _train(cfg, config, ckpt, stop_after, log if main else (lambda *_: None), accelerator,
                      data_dir, model_dir, run_dir)


def _train(cfg, config, ckpt, stop_after, log, accelerator, data_dir, model_dir, run_dir) -> dict:
    t, checks = cfg.training, cfg.checks
    run = prepare(cfg, log, accelerator)
    model, optimizer, scheduler, max_steps = run.model, run.optimizer, run.scheduler, run.max_steps
    main = accelerator.is_main_process
    metrics_path = run_dir / METRICS_FILE
    replay = Replay()
    average = WeightAverage(model, t.ema) if t.ema else None
    judged = dataclasses.replace(run, model=average.module) if average else run  # what is evaluated, gated and saved
    state = {"best": {"key": None, "step": 0}, "clean_evals": 0, "train_time_s": 0.0, "stopped_by_rule": False,
             "run_id": uuid.uuid4().hex[:12]}  # names the run for a tracker; a resumed run keeps it
    step = 0
    if ckpt is not None:
        step, saved, extra = load_checkpoint(ckpt, model, optimizer, scheduler)
        state.update({k: saved[k] for k in state if k in saved})
        replay.pairs = extra.get("replay", replay.pairs)
        if average:
            average.load(extra)
        if main:
            truncate_metrics(metrics_path, step)
        log(f"resumed from step {step}")
    elif main:
        metrics_path.unlink(missing_ok=True)
    if main:
        with atomic_open(run_dir / "config.yaml") as f:
            yaml.safe_dump(config, f, sort_keys=False)
    tracker = Tracker(cfg.runtime.log_with if main else "none", run_dir, config, state["run_id"], step)
    scaler = torch.amp.GradScaler(run.device.type) if run.precision == "fp16" else None

    def reduce(x):
        return accelerator.reduce(x, "sum") if accelerator.num_processes > 1 else x

    def checkpoint():
        if main:
            save_checkpoint(run_dir, step, model, optimizer, scheduler, {**state, "config": config},
                            {"replay": replay.pairs, **(average.tensors() if average else {})})
        accelerator.wait_for_everyone()

    model.train()
    done = checks.early_stop and state.get("stopped_by_rule", False)
    bar = tqdm(total=max_steps, initial=step, desc="training", unit="step", dynamic_ncols=True,
               disable=None if main else True)
    log_line = tqdm.write if not bar.disable else log
    last_checkpoint = step
    # Ctrl-C and SIGTERM stop at the next step boundary with a checkpoint; a KeyboardInterrupt raised at an
    # arbitrary point could land in a __del__ and be swallowed. A second Ctrl-C stops at once.
    stop = {"signal": None}

    def request_stop(signum, frame):
        if stop["signal"] is not None:
            raise KeyboardInterrupt
        stop["signal"] = signum

    handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while step < max_steps and not done:
            if stop["signal"] is not None:
                raise KeyboardInterrupt
            t0 = time.perf_counter()
            out = train_step(run, *batch_tensors(run, replay, step, t), t.grad_clip, t.head_weight, scaler)
            if average:
                average.update(model)
            step += 1
            state["train_time_s"] += time.perf_counter() - t0
            bar.update(1)

            if step % checks.eval_interval == 0 or step == max_steps:
                record = evaluation(judged, replay, step, cfg, reduce, out, state["train_time_s"])
                if main:
                    append_metrics(metrics_path, record)
                tracker.log(record)
                log_line(describe(record, max_steps))
                state["clean_evals"] = state["clean_evals"] + 1 if is_clean(record, checks) else 0
                key = [record["accuracy"], record.get("fresh_accuracy", 0.0), -record["loss"]]
                if state["best"]["key"] is None or key > state["best"]["key"]:
                    state["best"] = {"key": key, "step": step, "accuracy": record["accuracy"]}
                    if main:
                        save_model(judged.model, run.tok, model_dir, {METRICS_FILE: metrics_path})
                if checks.early_stop and state["clean_evals"] >= checks.stop_clean_evals:
                    done = state["stopped_by_rule"] = gate(judged, replay, step, cfg, log_line)
                    if done and state["best"]["step"] != step:
                        # The weights the gate vetted are the ones to keep, even at a slightly higher loss.
                        state["best"] = {"key": key, "step": step, "accuracy": record["accuracy"]}
                        if main:
                            save_model(judged.model, run.tok, model_dir, {METRICS_FILE: metrics_path})
                    if not done:
                        state["clean_evals"] = 0
            if stop_after is not None and step >= stop_after:
                done = True
            if step % cfg.runtime.checkpoint_interval == 0 or done or step == max_steps:
                checkpoint()
                last_checkpoint = step
    except KeyboardInterrupt:
        bar.close()
        if step > last_checkpoint:
            checkpoint()
        raise KeyboardInterrupt(f"stopped at step {step}; checkpoint saved in {run_dir}; "
                                "continue with the same command plus --resume") from None
    finally:
        tracker.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    bar.close()
    stopped = "its stopping rule" if state.get("stopped_by_rule") else (
        "--stop-after" if step < max_steps else "the end of the schedule")
    log(f"stopped at step {step} by {stopped}")
    cert = None
    if state["best"]["step"] > 0 and stopped != "--stop-after":
        cert = _finish(run, cfg, run_dir, model_dir, data_dir, log)
    accelerator.wait_for_everyone()
    return {"steps": step, "train_time_s": state["train_time_s"], "best": state["best"], "parameters": run.n_params,
            "samples_per_s": step * run.batches.batch_size / max(state["train_time_s"], 1e-9), "stopped_by": stopped,
            "certificate": cert, "main_process": main}


def _finish(run: Setup, cfg, run_dir: Path, model_dir: Path, held_out: Path, log):
    """Training curves, the saved model measured by real decoding on the held-out file, and its certificate."""
    acc = run.accelerator
    model = None
    if acc.is_main_process:
        training_curves(run_dir / METRICS_FILE, run_dir / "training_curves.png")
        shutil.copyfile(run_dir / METRICS_FILE, model_dir / METRICS_FILE)
        shutil.copyfile(run_dir / "training_curves.png", model_dir / "training_curves.png")
        shutil.copyfile(run_dir / "config.yaml", model_dir / "training_config.yaml")
    acc.wait_for_everyone()
    model, tok = load_model(str(model_dir), device=run.device)
    if acc.is_main_process:
        result = evaluate_file(model, tok, held_out, default_mode(model))
        write_outputs(result, model_dir, held_out)
        hi = model.config.max_operand
        a, b = (101, 1002) if hi >= 1002 else (hi // 3, hi)  # the README's example, when in range
        problem_attention(model, tok, a, b, model_dir / "attention_visualizations")
        log(report(result))
    n = cfg.checks.certify
    if not n:
        return None
    cert = certify.certify_distributed(model, tok, n, seed=0, out_dir=model_dir, accelerator=acc,
                                       search_rounds=cfg.checks.certify_search)
    if acc.is_main_process:
        log(certificate.report(cert))
    return certificate.summary(cert)

