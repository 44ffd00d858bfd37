"""What a run measures as it goes: held-out exact match and a fresh sample at each evaluation, the
stopping gate, and the metrics records and log lines that report them."""
import json
import time
from pathlib import Path

import torch

from ..common import rng
from ..common.io import atomic_open
from ..data.samplers import family_pairs
from ..verify.verdicts import pair_verdicts, split_accuracy
from .mixture import Replay
from .prepare import Setup

METRICS_FILE = "metrics.jsonl"
FRESH_FROM = 0.99  # held-out accuracy from which each evaluation also checks a fresh sample


def check_pairs(run: Setup, n: int, families: dict[str, float], seed: int, stream: int, step: int) -> torch.Tensor:
    """(n, 2) fresh problems of the model's operand range for a check, of `families` (checks.families)."""
    c = run.model.config
    return family_pairs(c.min_operand, c.max_operand, n, c.base, families, rng.generator(seed, stream, step))


def evaluation(run: Setup, replay: Replay, step: int, cfg, reduce, out, train_time_s: float) -> dict:
    """Held-out exact match and loss, and a fresh sample whose wrong problems join the replay."""
    acc, checks = run.accelerator, cfg.checks
    ev = split_accuracy(run.model, run.held_split, rank=acc.process_index, world=acc.num_processes, reduce=reduce,
                        autocast=run.autocast())
    record = {"step": step, "time": round(time.time(), 3), "train_time_s": round(train_time_s, 3),
              "samples_per_s": round(step * run.batches.batch_size / max(train_time_s, 1e-9), 1),
              "lr": run.scheduler.get_last_lr()[0], "train_loss": out.loss.item(),
              "train_head_losses": out.head_losses.tolist(), **ev}
    # Below 99% on the held-out file its own errors say enough, and the fresh check would cost a third of the run.
    if checks.fresh_eval and ev["accuracy"] >= FRESH_FROM:
        pairs = check_pairs(run, checks.fresh_eval, checks.families, cfg.training.seed, rng.FRESH, step)
        missed = wrong_pairs(run, pairs)
        if cfg.training.mixture.get("replay"):
            replay.add(missed)
        record.update(fresh_errors=len(missed), fresh_total=checks.fresh_eval,
                      fresh_accuracy=1 - len(missed) / checks.fresh_eval, replay_size=len(replay))
    return record


def is_clean(record: dict, checks) -> bool:
    """No error on the held-out file, nor on the fresh sample when there is one."""
    return record["errors"] == 0 and (record.get("fresh_errors") == 0 or not checks.fresh_eval)


def wrong_pairs(run: Setup, pairs: torch.Tensor) -> torch.Tensor:
    """The pairs whose answer greedy decoding gets wrong (verdicts.pair_verdicts, teacher forced), each process
    checking every world-th pair; every process gets all of them, in order, so decisions made from them agree."""
    acc = run.accelerator
    mine = pairs[acc.process_index::acc.num_processes]
    right = pair_verdicts(run.model, run.tok, run.encoder, mine, autocast=run.autocast())[0]
    if acc.num_processes > 1:
        from accelerate.utils import gather_object  # only under a launcher: importing it costs start-up
        out = torch.empty(len(pairs), dtype=torch.bool)
        for rank, part in enumerate(gather_object([right.tolist()])):
            out[rank::acc.num_processes] = torch.tensor(part, dtype=torch.bool)
        right = out
    return pairs[~right]


def gate(run: Setup, replay: Replay, step: int, cfg, log) -> bool:
    """The last check before stopping: a fresh sample of stop_gate problems with no error. Its errors are replayed."""
    checks = cfg.checks
    if not checks.stop_gate:
        return True
    missed = wrong_pairs(run, check_pairs(run, checks.stop_gate, checks.families, cfg.training.seed, rng.GATE, step))
    log(f"step {step}: stopping gate, {len(missed)} wrong of {checks.stop_gate:,} fresh problems"
        + ("" if len(missed) else "; stopping"))
    if len(missed) and cfg.training.mixture.get("replay"):
        replay.add(missed)
    return len(missed) == 0


def describe(r: dict, max_steps: int) -> str:
    eta = (max_steps - r["step"]) * r["train_time_s"] / max(r["step"], 1)
    fresh = (f", fresh {r['fresh_accuracy']:.4%} ({r['fresh_errors']} wrong of {r['fresh_total']:,})"
             if "fresh_errors" in r else "")
    return (f"step {r['step']}/{max_steps}: loss {r['loss']:.4g} (heads " + " ".join(f"{x:.3g}" for x in r["head_losses"])
            + f"), held-out {r['accuracy']:.4%} ({r['errors']} wrong){fresh}, lr {r['lr']:.3g}, "
            f"{r['samples_per_s']:.0f} samples/s, ETA {eta:.0f}s at most")


def append_metrics(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint we resume from; the resumed run logs them again."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    with atomic_open(path) as f:
        f.write("".join(line + "\n" for line in keep))
