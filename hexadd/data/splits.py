"""Training data as tensors: the splits, the seeded batch order, and the teacher-forced evaluation."""
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..common.rng import epoch_order
from . import dataset
from .encoding import answer_labels
from ..common.errors import DataError
from .tokenizer import separator_id

ENCODING = 1  # bump when encode_split's output changes, so cached encodings are not reused


# ---------------------------------------------------------------- data as tensors

@dataclass
class Split:
    input_ids: torch.Tensor      # (N, T) right-padded
    attention_mask: torch.Tensor # (N, T)
    labels: torch.Tensor         # (N, T) the answer tokens `C+`, -100 elsewhere
    digits: torch.Tensor         # (N, 2) operand lengths in the base

    def __len__(self):
        return len(self.input_ids)

    def to(self, device) -> "Split":
        return Split(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels, self.digits)))


def load_splits(tok, data_dir: str | Path) -> tuple[Split, Split]:
    """The train and test (held-out) splits of a data folder, tokenized."""
    dd = dataset.load(data_dir)
    return encode_split(tok, dd["train"], Path(data_dir) / "train"), encode_split(tok, dd["test"], Path(data_dir) / "test")


def encode_split(tok, ds, where) -> Split:
    """Tokenize with `Dataset.map`, cached by the datasets library under a fingerprint of the data and the
    tokenizer: a run on the same data and tokenizer skips tokenization, a new tokenizer gets its own cache."""
    import numpy as np
    import pyarrow.compute as pc
    from datasets.fingerprint import Hasher

    width = pc.max(pc.utf8_length(ds.data.table.column("text"))).as_py()  # tokens never outnumber characters
    sep, unk = separator_id(tok), tok.unk_token_id

    def encode(texts, rows):
        enc = tok(texts, padding="max_length", max_length=width, return_tensors="np")
        ids, mask = torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"])
        if unk is not None and (ids == unk).any():
            row = int((ids == unk).any(1).nonzero()[0])
            raise DataError(f"{where} row {rows[row]}: the tokenizer does not know a character of {texts[row]!r}; "
                            "run tokenizer.py again")
        small = np.int32 if len(tok) > 2**15 else np.int16  # a sixth of the cache's size on disk
        return {"input_ids": enc["input_ids"].astype(small), "attention_mask": enc["attention_mask"].astype(np.int8),
                "labels": answer_labels(ids, mask, sep).numpy().astype(small)}

    # The tokenizer as saved, less the padding state that encoding itself sets on it.
    saved = {k: v for k, v in json.loads(tok.backend_tokenizer.to_str()).items() if k not in ("padding", "truncation")}
    fingerprint = Hasher.hash([ds._fingerprint, saved, width, ENCODING])
    enc = ds.map(encode, batched=True, batch_size=10_000, input_columns="text", with_indices=True,
                 remove_columns=[c for c in ds.column_names if c not in ("digits_a", "digits_b")],
                 new_fingerprint=fingerprint)
    t = enc.with_format("torch")[:]
    used = int(t["attention_mask"].sum(1).max())  # digit merges make rows shorter than their characters
    return Split(t["input_ids"][:, :used].long(), t["attention_mask"][:, :used].long(), t["labels"][:, :used].long(),
                 torch.stack([t["digits_a"], t["digits_b"]], 1).long())


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
            g = epoch_order(self.seed, epoch)
            self._perm = (torch.randperm(self.n, generator=g) if self.weights is None else
                          torch.multinomial(self.weights, self.per_epoch * self.batch_size, replacement=True, generator=g))
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


def length_pair_weights(digits: torch.Tensor) -> torch.Tensor:
    """(N,) row weights that make every (digits of a, digits of b) pair equally likely in a batch.

    The data generator draws digit counts uniformly, but a pair of short lengths has few distinct
    problems (256 one-digit + one-digit pairs in base 16), so such pairs are rare in the training split
    and were where held-out answers went wrong; weighting by length pair repeats them instead.
    """
    _, pair, count = torch.unique(digits, dim=0, return_inverse=True, return_counts=True)
    return 1.0 / count[pair].double()
