"""Fresh problems during training, and the replay of the ones the model gets wrong.

Held-out accuracy on 5,000 problems cannot tell 99.97% from 100%. At every evaluation the trainer
also checks a new uniform sample of the whole operand range (seeded by step, never the
certificate's samples); problems it gets wrong join a replay buffer, and a fraction of every later
batch is drawn from it, so rare digit patterns get practised until they come out right.
"""
import contextlib

import torch

from .certify import head1_correct
from .encoding import encode_pairs

FRESH_STREAM = 2**40  # seeds of the trainer's fresh samples, far from certification's


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
        g = torch.Generator().manual_seed(seed * 1_000_003 + step + 1)
        return self.pairs[torch.randint(len(self.pairs), (k,), generator=g)]


def fresh_pairs(lo: int, hi: int, n: int, seed: int, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(FRESH_STREAM + seed * 1_000_003 + step)
    return torch.randint(lo, hi + 1, (n, 2), generator=g, dtype=torch.long)


@torch.no_grad()
def fresh_check(model, tok, encoder, pairs: torch.Tensor, batch_size: int = 1024, autocast=None) -> torch.Tensor:
    """The pairs (of `pairs`) that greedy decoding would get wrong."""
    c = model.config
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    wrong = []
    try:
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size].to(device)
            with autocast or contextlib.nullcontext():
                ok = head1_correct(model, encode_pairs(tok, encoder, chunk[:, 0], chunk[:, 1], c.base, c.reverse))
            wrong.append(chunk[~ok].cpu())
    finally:
        model.train(was_training)
    return torch.cat(wrong) if wrong else torch.empty(0, 2, dtype=torch.long)
