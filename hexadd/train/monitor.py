"""What a run measures as it goes: held-out exact match and a fresh sample at each evaluation, the
stopping gate, and the metrics records and log lines that report them."""
import json
import time
from pathlib import Path

import torch

from ..common.io import atomic_open
from ..data.samplers import GATE_STREAM, SEARCH_STREAM, Replay, fresh_margins, fresh_pairs
from ..verify.search import POPULATION, search
from .setup import Setup
from ..data.splits import evaluate

METRICS_FILE = "metrics.jsonl"
FRESH_FROM = 0.99  # held-out accuracy from which each evaluation also checks a fresh sample


def evaluation(run: Setup, replay: Replay, step: int, t, reduce, out, train_time_s: float) -> dict:
    """Held-out exact match and loss, and a fresh sample whose missed problems (fresh_misses) join the replay."""
    acc = run.accelerator
    ev = evaluate(run.model, run.held_split, rank=acc.process_index, world=acc.num_processes, reduce=reduce,
                  autocast=run.autocast())
    record = {"step": step, "time": round(time.time(), 3), "train_time_s": round(train_time_s, 3),
              "samples_per_s": round(step * run.batches.batch_size / max(train_time_s, 1e-9), 1),
              "lr": run.scheduler.get_last_lr()[0], "train_loss": out.loss.item(),
              "train_head_losses": out.head_losses.tolist(), **ev}
    # Below 99% on the held-out file its own errors say enough, and the fresh check would cost a third of the run.
    if t.fresh_eval and ev["accuracy"] >= FRESH_FROM:
        c = run.model.config
        pairs = fresh_pairs(c.min_operand, c.max_operand, t.fresh_eval, t.seed, step, c.base, t.carry_share,
                            sum_share=t.sum_share)
        missed, wrong = fresh_misses(run, pairs, t.margin)
        if t.replay_until_right and len(replay):
            # Problems long since learnt would dilute the ones still missed (the gate's finds above all).
            kept, _ = fresh_misses(run, replay.pairs, t.margin)
            record["replay_learnt"] = len(replay) - len(kept)
            replay.pairs = kept
        if t.replay > 0:
            replay.add(missed)
        record.update(fresh_errors=wrong, fresh_thin=len(missed) - wrong, fresh_total=t.fresh_eval,
                      fresh_accuracy=1 - wrong / t.fresh_eval, replay_size=len(replay))
    return record


def is_clean(record: dict, t) -> bool:
    """No miss on the held-out file, nor on the fresh sample when there is one."""
    return record["errors"] == 0 and ((record.get("fresh_errors") == 0 and not record.get("fresh_thin"))
                                      or not t.fresh_eval)


def all_margins(run: Setup, pairs: torch.Tensor) -> torch.Tensor:
    """(N,) margins of `pairs` (replay.fresh_margins), each process checking every world-th pair; every process
    gets all of them, in order, so decisions made from them agree across processes."""
    acc = run.accelerator
    mine = pairs[acc.process_index::acc.num_processes]
    m = fresh_margins(run.model, run.tok, run.encoder, mine, autocast=run.autocast())
    if acc.num_processes == 1:
        return m
    from accelerate.utils import gather_object
    out = torch.empty(len(pairs))
    for rank, part in enumerate(gather_object([m.tolist()])):
        out[rank::acc.num_processes] = torch.tensor(part)
    return out


def misses(pairs: torch.Tensor, m: torch.Tensor, margin: float) -> tuple[torch.Tensor, int]:
    """The pairs the model gets wrong or right by less than `margin` logits at some answer token, and how many
    of them are wrong (a tie counts as wrong).

    Why a margin: a nearly exact model's last errors are one problem in 10^6 or fewer, which a gate of 10^5
    rarely draws; the problems of the same families that it gets right by a thin lead are two to nine times as
    common (bench/sample_families.py), so missing those keeps them in the replay and the run going."""
    miss = (m <= 0) | (m < margin)
    return pairs[miss], int((m <= 0).sum())


def fresh_misses(run: Setup, pairs: torch.Tensor, margin: float) -> tuple[torch.Tensor, int]:
    """misses() of `pairs`, checked across all processes."""
    return misses(pairs, all_margins(run, pairs), margin)


def gate(run: Setup, replay: Replay, step: int, t, log) -> bool:
    """The last check before stopping: a fresh sample of stop_gate problems with no miss (misses()), then, if
    stop_search is set, a search for wrong problems among the neighbours of the sample's thinnest (search.py)
    that finds no miss either. Its misses are replayed."""
    if not t.stop_gate:
        return True
    c = run.model.config
    pairs = fresh_pairs(c.min_operand, c.max_operand, t.stop_gate, t.seed, step, c.base, t.carry_share, GATE_STREAM,
                        t.sum_share)
    m = all_margins(run, pairs)
    missed, wrong = misses(pairs, m, t.margin)
    thin = f" and {len(missed) - wrong} right by under {t.margin:g} logits" if t.margin else ""
    line = f"step {step}: stopping gate, {wrong} wrong{thin} of {t.stop_gate:,} fresh problems"
    if not len(missed) and t.stop_search:
        g = torch.Generator().manual_seed((SEARCH_STREAM + t.seed * 1_000_003 + step) % 2**32)
        found, found_m = search(lambda p: all_margins(run, p), pairs, m, t.stop_search, c.min_operand,
                                c.max_operand, c.base, g)
        missed, wrong = misses(found, found_m, t.margin)
        thin = f" and {len(missed) - wrong} right by under {t.margin:g} logits" if t.margin else ""
        lead = f"; thinnest lead {found_m.min():.2f}" if len(found) else ""
        line += (f"; its error search ({t.stop_search} rounds from the {POPULATION} thinnest) found {wrong} wrong"
                 f"{thin} of {len(found):,} neighbours{lead}")
    log(line + ("" if len(missed) else "; stopping"))
    if len(missed) and t.replay > 0:
        replay.add(missed)
    return len(missed) == 0


def describe(r: dict, max_steps: int) -> str:
    eta = (max_steps - r["step"]) * r["train_time_s"] / max(r["step"], 1)
    thin = f", {r['fresh_thin']} thin" if r.get("fresh_thin") else ""
    fresh = (f", fresh {r['fresh_accuracy']:.4%} ({r['fresh_errors']} wrong{thin} of {r['fresh_total']:,})"
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
