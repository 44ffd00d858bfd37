"""Problem generation and the held-out split; text files of problems a user brings.

The generator writes a Hugging Face dataset (hexadd/data/dataset.py): splits `train` and `test`, the held-out
problems. Held-out pairs are unordered: if a+b is held out, so is b+a.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from ..common.rng import held_out_choice, problem_sample
from . import dataset
from ..config.schema import DataConfig
from ..config.files import to_dict
from ..common.errors import DataError
from .numbers import parse_problem, to_base

MAX_EXHAUSTIVE = 20_000_000  # pairs; beyond this, sample with problems.count instead

Pair = tuple[int, int]


def edge_cases(lo: int, hi: int, base: int) -> list[Pair]:
    """Pairs every evaluation must include: the extremes and the longest carry chains in range."""
    pairs = [(lo, lo), (hi, hi), (lo, hi), (hi, lo)]
    k = 1
    while base**k - 1 <= hi:
        all_max = base**k - 1  # FFF...F: adding 1 carries through every digit
        if all_max >= lo:
            pairs += [(all_max, 1), (1, all_max), (all_max, all_max)]
        k += 1
    seen = set()
    return [p for p in pairs if lo <= min(p) and max(p) <= hi and not (p in seen or seen.add(p))]


def sample_pairs(lo: int, hi: int, count: int, exhaustive: bool, seed: int, base: int = 16,
                 by_length: bool = True) -> list[Pair]:
    """Distinct ordered pairs from [lo, hi]^2, in a seeded random order.

    by_length: each operand's digit count is drawn uniformly first, then the number; drawn uniformly
    instead, 0..9999 would hold a one-digit operand in 0.2% of problems and the model would never learn them.
    """
    m = hi - lo + 1
    total = m * m
    rng = problem_sample(seed)
    if exhaustive:
        if total > MAX_EXHAUSTIVE:
            raise DataError(f"exhaustive: the range {lo}..{hi} has {total:,} pairs, more than {MAX_EXHAUSTIVE:,}; "
                            "set problems.exhaustive=false and problems.count instead")
        indices = list(range(total))
        rng.shuffle(indices)
        return [(lo + i // m, lo + i % m) for i in indices]
    if count > total:
        raise DataError(f"problems.count: {count:,} distinct problems asked for, but the range {lo}..{hi} "
                        f"has only {total:,}; lower the count or use problems.exhaustive=true")
    if not by_length and total <= sys.maxsize:
        return [(lo + i // m, lo + i % m) for i in rng.sample(range(total), count)]
    # Ranges of the numbers with 1, 2, ... digits, clipped to [lo, hi] (uniform, for ranges past sys.maxsize: one span).
    spans = [(max(lo, base ** (k - 1) if k > 1 else 0), min(hi, base ** k - 1)) for k in range(1, len(to_base(hi, base)) + 1)]
    spans = [s for s in spans if s[0] <= s[1]] if by_length else [(lo, hi)]
    seen, pairs = set(), []
    for _ in range(20 * count):  # short lengths run out of distinct pairs; the rest is topped up below
        if len(pairs) == count:
            break
        p = tuple(rng.randint(*rng.choice(spans)) for _ in range(2))
        if p not in seen:
            seen.add(p)
            pairs.append(p)
    while len(pairs) < count:
        p = (rng.randint(lo, hi), rng.randint(lo, hi))
        if p not in seen:
            seen.add(p)
            pairs.append(p)
    return pairs


def unordered(p: Pair) -> Pair:
    return (p[0], p[1]) if p[0] <= p[1] else (p[1], p[0])


def split_pairs(pairs: list[Pair], fraction: float, forced: list[Pair], seed: int) -> tuple[list[Pair], list[Pair]]:
    """Hold out about `fraction` of the problems, choosing whole unordered pairs; `forced` pairs (both orders) are always held out."""
    keys = sorted({unordered(p) for p in pairs})
    held_out_choice(seed).shuffle(keys)
    held_keys = {unordered(p) for p in forced}
    n_held = sum(1 for p in pairs if unordered(p) in held_keys)
    per_key = {}
    for p in pairs:
        k = unordered(p)
        per_key[k] = per_key.get(k, 0) + 1
    target = round(fraction * len(pairs))
    for k in keys:
        if n_held >= target:
            break
        if k not in held_keys:
            held_keys.add(k)
            n_held += per_key[k]
    train = [p for p in pairs if unordered(p) not in held_keys]
    held = [p for p in pairs if unordered(p) in held_keys]
    present = set(held)
    for a, b in forced:
        for p in ((a, b), (b, a)):
            if p not in present:
                held.append(p)
                present.add(p)
    return train, held


def overlap(train: list[Pair], held: list[Pair]) -> int:
    """Problems whose unordered pair is in both splits (must be 0)."""
    held_keys = {unordered(p) for p in held}
    return sum(1 for p in train if unordered(p) in held_keys)


@dataclass
class Summary:
    train: int
    held_out: int
    overlap: int
    out_dir: Path


def generate(cfg: DataConfig) -> Summary:
    """Write the dataset for `cfg` into output.dir: Parquet splits and card, each file replaced atomically."""
    num, prob = cfg.numbers, cfg.problems
    pairs = sample_pairs(num.min_operand, num.max_operand, prob.count, prob.exhaustive, prob.seed, num.base,
                         prob.sampling == "length")
    forced = edge_cases(num.min_operand, num.max_operand, num.base)
    train, held = split_pairs(pairs, prob.held_out_fraction, forced, prob.seed)
    if not train:
        raise DataError("the training split is empty: raise problems.count or widen the operand range")
    out = Path(cfg.output.dir)
    summary = Summary(train=len(train), held_out=len(held), overlap=overlap(train, held), out_dir=out)
    dataset.write(out, {"train": train, "test": held}, {
        "base": num.base, "reverse": num.reverse, "min_operand": num.min_operand, "max_operand": num.max_operand,
        "overlap": summary.overlap, "edge_cases": [list(p) for p in forced], "config": to_dict(cfg)})
    return summary


# ---------------------------------------------------------------- text files of problems

def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines, numbered as an editor shows them."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"{path} not found: run data_generator.py first") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise DataError(f"{path} is not a text file of problems") from None
    numbered = [(i, line.strip()) for i, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise DataError(f"{path} holds no problems")
    return numbered


def read_problems(path: str | Path, base: int, reverse: bool) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Lines of a problem file and their (a, b, c); a malformed line is a DataError naming it."""
    numbered = read_lines(path)
    lines = [line for _, line in numbered]
    problems = []
    for i, line in numbered:
        try:
            problems.append(parse_problem(line, base, reverse))
        except ValueError as e:
            raise DataError(f"{path} line {i}: {e}") from None
    return lines, problems
