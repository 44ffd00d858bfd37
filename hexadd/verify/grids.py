"""Exact match by operand length, on a grid reaching far beyond the trained lengths.

Cell (i, j) holds fresh problems whose first operand has exactly i digits and the second j, drawn as
digit arrays (any length: nothing passes through int64) and seeded by (seed, i, j) alone, so an
evaluation that is stopped and started again checks the same problems. One teacher-forced pass per
batch: head 1 right at every answer token is exactly what greedy decoding returns. A wrong answer is
also sorted by where it first goes wrong, which tells a model that cannot stop (or stops too soon)
from one that loses track of digits.
"""
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from .verdicts import head1_guess
from ..common import rng
from ..data.encoding import ProblemEncoder



@dataclass
class Cell:
    correct: int = 0
    total: int = 0
    wrong_digit: int = 0    # first wrong token: a digit inside the longer operand's length
    stopped_early: int = 0  # ... the closing `+` written there instead of a digit
    wrong_end: int = 0      # ... at the final carry digit or the closing `+`

    def add(self, other: "Cell") -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)


def cell_operands(i: int, j: int, n: int, base: int, seed: int):
    """(n, i) and (n, j) digit arrays, least significant first, uniform over the numbers with exactly i
    and j digits (0 counts as a one-digit number), and their lengths."""
    g = rng.generator(seed, rng.CERTIFY, i * rng.CELL + j)

    def draw(length):
        d = torch.randint(0, base, (n, length), generator=g)
        if length > 1:  # a leading digit of 0 would make it a shorter number
            d[:, -1] = torch.randint(1, base, (n,), generator=g)
        return d, torch.full((n,), length, dtype=torch.long)

    return (*draw(i), *draw(j))


def first_wrong(guess: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, T) wrong answer tokens, (N,) rows with any, and (N,) the index of each row's first wrong token
    within the answer `C+` (the answer tokens before it; the answer's length where none is wrong)."""
    answer = labels != -100
    wrong = (guess != labels) & answer
    return wrong, wrong.any(dim=1), (wrong.long().cumsum(dim=1) == 0).logical_and(answer).sum(dim=1)


def check_cell(model, encoder: ProblemEncoder, da, la, db, lb) -> Cell:
    """Teacher-forced exact match of one batch, with the wrong answers sorted by their first wrong token."""
    guess, labels = head1_guess(model, encoder.encode_digits(da, la, db, lb))   # (N, T-1) each
    wrong, bad, first = first_wrong(guess, labels)
    longer = torch.maximum(la, lb)
    at = wrong.float().argmax(dim=1)
    wrote_sep = guess.gather(1, at[:, None])[:, 0] == encoder.sep
    early = bad & (first < longer)
    return Cell(correct=int((~bad).sum()), total=len(da), wrong_digit=int((early & ~wrote_sep).sum()),
                stopped_early=int((early & wrote_sep).sum()), wrong_end=int((bad & (first >= longer)).sum()))


def grid_accuracy(model, tok, cells: list[tuple[int, int, int]], seed: int = 0, batch_size: int = 512,
                  done: dict | None = None, on_progress=None, log=print, progress: bool = True) -> dict:
    """Exact match for each (i, j, n) of `cells`; cells already in `done` are kept as they are.

    `on_progress(done)` is called every few seconds and at the end, so a caller can save the cells measured so far."""
    c = model.config
    device = next(model.parameters()).device
    encoder = ProblemEncoder(tok, c.base, c.reverse, c.max_operand)
    done = {} if done is None else done
    todo = [cell for cell in cells if cell[:2] not in done]
    was_training = model.training
    model.eval()
    bar = tqdm(total=sum(n for *_, n in todo), desc="length grid", unit="problem", unit_scale=True,
               disable=not progress or None, dynamic_ncols=True)
    last_save = time.monotonic()
    row_end = {i: j for i, j, _ in cells}  # cells come row by row
    try:
        for i, j, n in todo:
            da, la, db, lb = cell_operands(i, j, n, c.base, seed)
            cell = Cell()
            for s in range(0, n, batch_size):
                part = (t[s:s + batch_size].to(device) for t in (da, la, db, lb))
                cell.add(check_cell(model, encoder, *part))
                bar.update(min(batch_size, n - s))
            done[(i, j)] = cell
            if on_progress is not None and time.monotonic() - last_save > 5:
                on_progress(done)
                last_save = time.monotonic()
            if j == row_end[i]:
                row = [done[k] for k in done if k[0] == i]
                ok, total = sum(x.correct for x in row), sum(x.total for x in row)
                (bar.write if not bar.disable else log)(
                    f"first operand {i} digits: {ok / max(total, 1):.1%} right over {len(row)} second-operand lengths")
    finally:
        bar.close()
        model.train(was_training)
        if on_progress is not None:
            on_progress(done)
    return done


def grid_cells(max_digits: int, per_cell: int, diagonal: int) -> list[tuple[int, int, int]]:
    """(i, j, problems) for every pair of lengths up to max_digits; equal lengths get `diagonal` problems."""
    return [(i, j, diagonal if i == j else per_cell) for i in range(1, max_digits + 1) for j in range(1, max_digits + 1)]


def summarize(done: dict, trained: tuple[int, int], max_digits: int) -> dict:
    """In-range accuracy, the diagonal at 2x, 3x and 4x the longest trained length, and accuracy by the longer operand."""
    def pool(keys):
        total = Cell()
        for k in keys:
            total.add(done[k])
        return {"correct": total.correct, "total": total.total, "accuracy": total.accuracy}

    lo, hi = trained
    inside = [k for k in done if lo <= k[0] <= hi and lo <= k[1] <= hi]
    multiples = [{"factor": f, "digits": f * hi, **pool([(f * hi, f * hi)])}
                 for f in (2, 3, 4) if (f * hi, f * hi) in done]
    longer = [{"digits": n, **pool([k for k in done if max(k) == n])} for n in range(1, max_digits + 1)
              if any(max(k) == n for k in done)]
    return {"in_range": pool(inside), "multiples": multiples, "by_longer_operand": longer,
            "all": pool(list(done))}


def to_json(done: dict) -> list[dict]:
    return [{"digits_a": i, "digits_b": j, **vars(cell)} for (i, j), cell in sorted(done.items())]


def from_json(rows: list[dict]) -> dict:
    return {(r["digits_a"], r["digits_b"]): Cell(**{k: r[k] for k in vars(Cell())}) for r in rows}
