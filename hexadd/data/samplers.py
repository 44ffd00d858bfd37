"""Fresh problems during training, and the replay of the ones the model gets wrong.

Held-out accuracy on 5,000 problems cannot tell 99.97% from 100%. At every evaluation the trainer
also checks a new uniform sample of the whole operand range (seeded by step, never the
certificate's samples); problems it gets wrong join a replay buffer, and a fraction of every later
batch is drawn from it, so rare digit patterns get practised until they come out right.
"""
import torch

from ..verify.certify import pair_verdicts
from .encoding import int64_digits
from .numbers import num_digits

# Seeds of the trainer's samples: seed * 1_000_003 + step in a stream of its own. torch seeds its CPU
# generator with a seed's low 32 bits only, so the streams sit 2^30 apart within them, away from
# certification's seed * 1_000_003 + chunk (for seeds below a thousand).
FRESH_STREAM = 1 << 30  # the fresh checks at each evaluation
GATE_STREAM = 2 << 30   # the stopping gate
TRAIN_STREAM = 3 << 30  # the carry-run rows of training batches
# The gate's error search (search.py) draws which neighbours to try, not a sample to measure, so it may share
# the gate's quarter (halfway in, apart from it for seeds below about 500).
SEARCH_STREAM = GATE_STREAM + (1 << 29)


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


def fresh_pairs(lo: int, hi: int, n: int, seed: int, step: int, base: int = 16, carry_share: float = 0.0,
                stream: int = FRESH_STREAM, sum_share: float = 0.0) -> torch.Tensor:
    """(n, 2) operand pairs, uniform over [lo, hi]^2, except that the first `carry_share` of them have a
    carry run (carry_runs) and the next `sum_share` have digit sums drawn uniformly (uniform_sums)."""
    g = torch.Generator().manual_seed((stream + seed * 1_000_003 + step) % 2**32)
    pairs = torch.randint(lo, hi + 1, (n, 2), generator=g, dtype=torch.long)
    k = round(carry_share * n)
    if k:
        pairs[:k, 1] = carry_runs(pairs[:k, 0], pairs[:k, 1], lo, hi, base, g)
    m = min(round(sum_share * n), n - k)
    if m:
        pairs[k:k + m] = uniform_sums(pairs[k:k + m], lo, hi, base, g)
    return pairs


def uniform_sums(pairs: torch.Tensor, lo: int, hi: int, base: int, g: torch.Generator, tries: int = 8) -> torch.Tensor:
    """`pairs` with the digits below both operands' leading ones redrawn so that each digit sum is uniform over
    0..2(base - 1). Uniform digits make a sum of 30 (F+F) one column in 256 and a sum of 15 one in 16; a nearly
    exact model's last errors sit in such rare columns (F+F answered F, a carry out of D+F lost), and here every
    sum is one column in 31. The leading digits stay, so lengths do too; a result outside [lo, hi] is drawn
    again, and after `tries` draws left as it was."""
    width = num_digits(hi, base)
    n = len(pairs)
    if width < 2 or not n:
        return pairs
    powers = base ** torch.arange(width, dtype=torch.long)
    da, la = int64_digits(pairs[:, 0], base, width)
    db, lb = int64_digits(pairs[:, 1], base, width)
    below = torch.arange(width) < (torch.minimum(la, lb) - 1)[:, None]            # (n, width): digits to redraw
    out, todo = pairs.clone(), torch.ones(n, dtype=torch.bool)
    for _ in range(tries):
        s = torch.randint(0, 2 * base - 1, da.shape, generator=g)
        first = (s - (base - 1)).clamp(min=0)                                     # a's digit: first..min(s, base - 1)
        a_digit = first + (torch.rand(da.shape, generator=g) * (s.clamp(max=base - 1) - first + 1)).long()
        a = (torch.where(below, a_digit, da) * powers).sum(dim=1)
        b = (torch.where(below, s - a_digit, db) * powers).sum(dim=1)
        ok = todo & (a >= lo) & (a <= hi) & (b >= lo) & (b <= hi)
        out[ok] = torch.stack([a[ok], b[ok]], dim=1)
        todo &= ~ok
    return out


def carry_runs(a: torch.Tensor, b: torch.Tensor, lo: int, hi: int, base: int, g: torch.Generator,
               tries: int = 8) -> torch.Tensor:
    """`b` rewritten so that a's and b's digits sum to exactly base - 1 over a run of 1 or more digits.
    The run starts at the least significant digit (no carry into it), or above a digit that starts a
    carry (digits summing to at least `base`) or one that does not (at most base - 2), half and half.
    Through such a run a carry goes all the way or not at all: a nearly exact model's errors are there,
    lost carries and invented ones, and uniform pairs of hex digits make a run of two about once in 100
    problems. A result outside [lo, hi] is drawn again, and after `tries` draws left as it was."""
    width = num_digits(hi, base)
    if width < 2:
        return b
    n = len(b)
    powers = base ** torch.arange(width, dtype=torch.long)
    col = torch.arange(width)
    da, db = int64_digits(a, base, width)[0], int64_digits(b, base, width)[0]
    out, todo = b.clone(), torch.ones(n, dtype=torch.bool)
    for _ in range(tries):
        below = (torch.rand(n, generator=g) * width).long()[:, None] - 1                       # (n, 1); -1: none
        end = below + 1 + (torch.rand(n, 1, generator=g) * (width - 1 - below)).long()         # last digit of the run
        carry = (torch.rand(n, 1, generator=g) < 0.5) & (below >= 0)
        u = torch.rand(da.shape, generator=g)
        start = base - da + (u * da).long()                    # b's digit with a sum >= base: none when a's is 0
        stop = (u * (base - 1 - da)).long()                     # with a sum <= base - 2: none when a's is base - 1
        digits = torch.where(col == below, torch.where(carry, start, stop), db)
        digits = torch.where((col > below) & (col <= end), base - 1 - da, digits)
        value = (digits * powers).sum(dim=1)
        a_below = da.gather(1, below.clamp(min=0))
        possible = ((below < 0) | torch.where(carry, a_below > 0, a_below < base - 1))[:, 0]
        ok = todo & possible & (value >= lo) & (value <= hi)
        out[ok], todo = value[ok], todo & ~ok
    return out


def fresh_margins(model, tok, encoder, pairs: torch.Tensor, batch_size: int = 1024, autocast=None) -> torch.Tensor:
    """(N,) on the CPU: each pair's answer margin, teacher forced (certify.answer_margin; <= 0: greedy decoding
    gets it wrong)."""
    return pair_verdicts(model, tok, encoder, pairs, batch_size, autocast)[1]
