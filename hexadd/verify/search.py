"""Hunting a model's wrong problems: a local search from the problems it gets right by the thinnest lead.

A nearly exact model is wrong on a few problems in 10^6, which a gate of 10^5 uniform problems rarely draws.
Its wrong problems are not scattered, though. They sit among problems it answers right by a thin lead (the
margin: head 1's logit for the right token less the highest other, at the answer's worst token;
bench/sample_families.py), and a neighbour of a thin problem, one digit of one operand changed, is often
thinner still. So the search starts from a sample's thinnest problems and, round after round, keeps the
thinnest of them and their neighbours. The default config's seed 2, wrong on 1 of 10^6 uniform problems,
passed its 10^5 gate with none wrong; ten rounds from that gate found 51 wrong among 24,366 neighbours in
8 s. Seed 0's model, wrong on none of 10^6, showed none in 25,532 (bench/search_errors.py, README).
"""
import torch

from ..data.numbers import num_digits

POPULATION = 256  # problems kept from one round to the next: the thinnest seen
CHILDREN = 16     # neighbours drawn from each kept problem per round


def neighbours(pairs: torch.Tensor, k: int, lo: int, hi: int, base: int, g: torch.Generator) -> torch.Tensor:
    """Each (a, b) pair `k` times, with one digit of a or b (any of the range's digit places, so a number can
    grow or shrink) redrawn; one that would leave [lo, hi] keeps its old digit. Distinct rows, none of `pairs`."""
    rows = pairs.repeat_interleave(k, dim=0)
    n = len(rows)
    which = torch.randint(0, 2, (n,), generator=g)
    place = base ** torch.randint(0, num_digits(hi, base), (n,), generator=g)
    x = rows[torch.arange(n), which]
    moved = x + (torch.randint(0, base, (n,), generator=g) - x // place % base) * place
    rows[torch.arange(n), which] = torch.where((moved >= lo) & (moved <= hi), moved, x)
    rows = torch.unique(rows, dim=0)
    old = torch.unique(pairs, dim=0)
    both = torch.cat([old, rows])
    _, inverse, counts = torch.unique(both, dim=0, return_inverse=True, return_counts=True)
    return rows[counts[inverse[len(old):]] == 1]


def search(margins_of, pairs: torch.Tensor, margins: torch.Tensor, rounds: int, lo: int, hi: int, base: int,
           g: torch.Generator, population: int = POPULATION, children: int = CHILDREN
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The problems a local search evaluated, and their margins. It starts from the `population` thinnest of
    `pairs` (whose `margins` are known) and for `rounds` rounds evaluates `children` neighbours of each kept
    problem with `margins_of` (pairs -> margins), keeping the thinnest of all seen. Deterministic given `g`,
    so processes that run it with the same generator and the same margins agree."""
    keep = torch.argsort(margins, stable=True)[:population]
    pop, pop_m = pairs[keep], margins[keep]
    seen, seen_m = [torch.empty(0, 2, dtype=torch.long)], [torch.empty(0)]
    for _ in range(rounds):
        kids = neighbours(pop, children, lo, hi, base, g)
        if not len(kids):
            break
        kid_m = margins_of(kids)
        seen.append(kids)
        seen_m.append(kid_m)
        both, both_m = torch.cat([pop, kids]), torch.cat([pop_m, kid_m])
        keep = torch.argsort(both_m, stable=True)[:population]
        pop, pop_m = both[keep], both_m[keep]
    found, found_m = torch.cat(seen), torch.cat(seen_m)
    # A problem drawn again in a later round was evaluated again; count it once.
    found, inverse = torch.unique(found, dim=0, return_inverse=True)
    return found, torch.full((len(found),), float("inf")).scatter_reduce(0, inverse, found_m, "amin")
