"""Training data as tensors: the splits, the seeded batch order, and the teacher-forced evaluation."""
import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import DataMeta, read_problems
from .encoding import answer_labels
from .errors import DataError
from .numbers import num_digits
from .tokenization import separator_id


# ---------------------------------------------------------------- data as tensors

@dataclass
class Split:
    input_ids: torch.Tensor      # (N, T) right-padded
    attention_mask: torch.Tensor # (N, T)
    labels: torch.Tensor         # (N, T) the answer tokens `C+`, -100 elsewhere
    operands: torch.Tensor       # (N, 2) decimal a, b

    def __len__(self):
        return len(self.input_ids)

    def to(self, device) -> "Split":
        return Split(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels, self.operands)))


def encode_split(tok, lines: list[str], problems, path) -> Split:
    enc = tok(lines, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if tok.unk_token_id is not None and (ids == tok.unk_token_id).any():
        row = int((ids == tok.unk_token_id).any(1).nonzero()[0])
        raise DataError(f"{path} line {row + 1}: the tokenizer does not know a character of {lines[row]!r}; run tokenizer.py again")
    labels = answer_labels(ids, mask, separator_id(tok))
    operands = torch.tensor([(a, b) for a, b, _ in problems], dtype=torch.long)
    return Split(ids, mask, labels, operands)


def load_split(tok, path: Path, meta: DataMeta) -> Split:
    lines, problems = read_problems(path, meta.base, meta.reverse)
    return encode_split(tok, lines, problems, path)


@torch.no_grad()
def evaluate(model, split: Split, batch_size: int = 2048, rank: int = 0, world: int = 1, reduce=None,
             autocast=None) -> dict:
    """Teacher-forced pass over a split. Head-1 argmax matching every answer token is exactly what
    greedy decoding would return, so `accuracy` is exact-match accuracy of plain greedy decoding.

    In a distributed run each process takes rows rank::world and `reduce` sums the counts."""
    was_training = model.training
    model.eval()
    n = model.config.n_predict
    device = next(model.parameters()).device
    sums = torch.zeros(2 + 2 * n, dtype=torch.float64, device=device)  # rows, answer tokens, hits per head, loss per head
    rows = torch.arange(rank, len(split), world)
    for i in range(0, len(rows), batch_size):
        idx = rows[i:i + batch_size]
        ids, mask, labels = (t[idx].to(device) for t in (split.input_ids, split.attention_mask, split.labels))
        with autocast or contextlib.nullcontext():
            out = model(ids, attention_mask=mask, labels=labels)
        w = int((labels[:, 1:] != -100).sum())
        sums[0] += len(idx)
        sums[1] += w
        sums[2 + n:] += out.head_losses.double() * w
        for j, lg in enumerate(out.head_logits, 1):
            target = labels[:, j:]                                   # (B, T-j)
            hit = (lg[:, :-j].argmax(-1) == target) | (target == -100)
            sums[1 + j] += hit.all(dim=1).sum()
    model.train(was_training)
    if reduce is not None:
        sums = reduce(sums)
    rows_n, tokens = sums[0].item(), max(sums[1].item(), 1.0)
    exact = (sums[2:2 + n] / max(rows_n, 1)).tolist()
    head_losses = (sums[2 + n:] / tokens).tolist()
    return {
        "accuracy": exact[0],
        "errors": int(round(rows_n - sums[2].item())),
        "loss": sum(head_losses) / n,
        "head_losses": head_losses,
        "head_exact": exact,  # head j teacher-forced, every answer token right
    }


class Batches:
    """Seeded, stateless order: batch `step` depends only on (seed, step), so a resumed run sees the same data.

    Without weights, each epoch is a permutation of the rows. With `weights`, an epoch's rows are drawn
    with replacement in proportion to them (same count per epoch).
    """

    def __init__(self, n: int, batch_size: int, seed: int, weights: torch.Tensor | None = None):
        self.n, self.batch_size, self.seed, self.weights = n, min(batch_size, n), seed, weights
        self.per_epoch = n // self.batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm = (torch.randperm(self.n, generator=g) if self.weights is None else
                          torch.multinomial(self.weights, self.per_epoch * self.batch_size, replacement=True, generator=g))
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


def length_pair_weights(operands: torch.Tensor, base: int) -> torch.Tensor:
    """(N,) row weights that make every (digits of a, digits of b) pair equally likely in a batch.

    The data generator draws digit counts uniformly, but a pair of short lengths has few distinct
    problems (256 one-digit + one-digit pairs in base 16), so such pairs are rare in train.txt
    and were where held-out answers went wrong; weighting by length pair repeats them instead.
    """
    longest = num_digits(int(operands.max()), base)
    digits = 1 + sum(((operands >= base**k).long() for k in range(1, longest)), torch.zeros_like(operands))  # (N, 2)
    _, pair, count = torch.unique(digits, dim=0, return_inverse=True, return_counts=True)
    return 1.0 / count[pair].double()
