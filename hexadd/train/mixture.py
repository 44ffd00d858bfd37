"""The rows of a training batch, by kind. Most rows come from the training file; `training.mixture` gives each
other kind its share of the batch: the replay of problems the model got wrong, and rows drawn anew from a problem
family (data/samplers.py). A kind is one record here; a family added in samplers.py is a kind too.

Why replay: held-out accuracy on 5,000 problems cannot tell 99.97% from 100%. At every evaluation the trainer
also checks a fresh sample of the whole operand range (monitor.py); problems it gets wrong join a buffer, and a
share of every later batch is drawn from it, so rare digit patterns get practised until they come out right.
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..common import rng
from ..common.errors import ConfigError
from ..data.samplers import FAMILIES, REWRITTEN, family_pairs


class Replay:
    """A bounded buffer of (a, b) pairs the model got wrong; newest kept when full."""

    def __init__(self, capacity: int = 65_536):
        self.capacity = capacity
        self.pairs = torch.empty(0, 2, dtype=torch.long)

    def __len__(self):
        return len(self.pairs)

    def add(self, pairs: torch.Tensor) -> None:
        self.pairs = torch.cat([self.pairs, pairs.cpu()])[-self.capacity:]

    def draw(self, k: int, seed: int, step: int) -> torch.Tensor:
        """(k, 2) pairs drawn with replacement, fixed by (seed, step): a resumed run draws the same."""
        return self.pairs[torch.randint(len(self.pairs), (k,), generator=rng.generator(seed, rng.REPLAY, step))]


@dataclass
class Draw:
    """What a kind may draw from: the model's operand range and base, the run's seed, the replay buffer."""
    lo: int
    hi: int
    base: int
    seed: int
    replay: Replay


@dataclass(frozen=True)
class RowKind:
    name: str
    rows: Callable[[Draw, int, int], torch.Tensor]  # (what to draw from, k, step) -> (k, 2) operand pairs


def _replayed(d: Draw, k: int, step: int) -> torch.Tensor:
    return d.replay.draw(k, d.seed, step) if len(d.replay) else torch.empty(0, 2, dtype=torch.long)


def _family(index: int, name: str):
    def rows(d: Draw, k: int, step: int) -> torch.Tensor:
        g = rng.generator(d.seed, rng.TRAIN + index * rng.TRAIN_KIND, step)  # each kind its own sub-stream
        return family_pairs(d.lo, d.hi, k, d.base, {name: 1.0}, g)
    return rows


KINDS = (RowKind("replay", _replayed), *(RowKind(f.name, _family(i, f.name)) for i, f in enumerate(FAMILIES)))


def check(training, checks) -> None:
    """Names in training.mixture and checks.families that no record has are errors, before anything runs."""
    known = [k.name for k in KINDS]
    for name in training.mixture:
        if name not in known:
            raise ConfigError(f"training.mixture.{name}: no such row kind (known: {', '.join(known)})")
    for name in checks.families:
        if name not in REWRITTEN:
            raise ConfigError(f"checks.families.{name}: no such family (known: {', '.join(REWRITTEN)}; "
                              "the rest of a sample is uniform)")


def batch_pairs(mixture: dict[str, float], rows: int, d: Draw, step: int) -> torch.Tensor:
    """The (k, 2) operand pairs of every kind's share of a batch of `rows`, kind after kind (KINDS' order); the
    replay gives none while its buffer is empty."""
    parts = [kind.rows(d, round(mixture[kind.name] * rows), step) for kind in KINDS if mixture.get(kind.name)]
    return torch.cat(parts) if parts else torch.empty(0, 2, dtype=torch.long)
