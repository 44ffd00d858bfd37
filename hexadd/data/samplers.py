"""Problem families: operand pairs drawn uniformly, then some rewritten where a nearly exact model's last errors
sit (carry runs, rare column sums). The fresh checks and the gate draw them (checks.families), and so may training
batches (training.mixture); a family added here is available to both.
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .encoding import int64_digits
from .numbers import num_digits


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


def carry_pairs(pairs: torch.Tensor, lo: int, hi: int, base: int, g: torch.Generator) -> torch.Tensor:
    """`pairs` with their second operands rewritten into carry runs against the first (carry_runs)."""
    return torch.stack([pairs[:, 0], carry_runs(pairs[:, 0], pairs[:, 1], lo, hi, base, g)], dim=1)


@dataclass(frozen=True)
class Family:
    name: str
    rewrite: Callable | None  # (pairs, lo, hi, base, generator) -> pairs; None: uniform, as drawn


FAMILIES = (Family("uniform", None), Family("carry", carry_pairs), Family("sums", uniform_sums))
REWRITTEN = tuple(f.name for f in FAMILIES if f.rewrite is not None)


def family_pairs(lo: int, hi: int, n: int, base: int, shares: dict[str, float], g: torch.Generator) -> torch.Tensor:
    """(n, 2) operand pairs, uniform over [lo, hi]^2, of which the first round(share * n) are rewritten into the
    first family of `shares`, the next into the second (in FAMILIES' order), and so on; the rest stay uniform."""
    pairs = torch.randint(lo, hi + 1, (n, 2), generator=g, dtype=torch.long)
    start = 0
    for family in FAMILIES:
        k = min(round(shares.get(family.name, 0.0) * n), n - start) if family.rewrite else 0
        if k:
            pairs[start:start + k] = family.rewrite(pairs[start:start + k], lo, hi, base, g)
            start += k
    return pairs
