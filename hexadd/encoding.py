"""Problems built as token tensors directly from operand tensors: no strings, no tokenizer call.

`+A+B+C+` for a whole batch at memory speed: digits by `(n // base**i) % base`, reversed or not,
written into a right-padded (N, T) tensor by per-row write positions. Every digit must be its own
token (the default tokenizer); a tokenizer that merges digits is refused here, and callers fall back
to `tok(...)` on strings. Equality with the tokenizer is checked in the tests.
"""
from dataclasses import dataclass

import torch

from .errors import ModelError
from .numbers import DIGITS, num_digits
from .tokenization import separator_id


@dataclass
class Encoded:
    input_ids: torch.Tensor       # (N, T) right-padded `+A+B+C+`
    attention_mask: torch.Tensor  # (N, T)
    labels: torch.Tensor          # (N, T) the answer tokens `C+`, -100 elsewhere


class ProblemEncoder:
    """Turns operand tensors a, b (int64, within [lo, hi]) into `+A+B+C+` token tensors."""

    def __init__(self, tok, base: int, reverse: bool, max_operand: int):
        vocab = tok.get_vocab()
        missing = [d for d in DIGITS[:base] if d not in vocab]
        if missing:
            raise ModelError(f"the tokenizer has no single-character token for digits {', '.join(missing)}")
        self.base, self.reverse = base, reverse
        self.digit_ids = torch.tensor([vocab[d] for d in DIGITS[:base]])
        self.sep, self.pad = separator_id(tok), tok.pad_token_id
        self.width = num_digits(max_operand, base)                # digits of the longest operand
        self.answer_width = num_digits(2 * max_operand, base)    # digits of the longest sum
        # `+` A `+` B `+` C `+`
        self.seq_len = 4 + 2 * self.width + self.answer_width
        self._powers = base ** torch.arange(self.answer_width, dtype=torch.long)

    @staticmethod
    def merges_digits(tok) -> bool:
        """True when some token holds several characters (BPE merges): then only the tokenizer can encode."""
        return any(len(t) > 1 and all(c in DIGITS for c in t) for t in tok.get_vocab())

    def digits(self, n: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, width) digit values, least significant first, and (N,) digit counts (0 has one digit)."""
        powers = self._powers[:width].to(n.device)
        d = (n[:, None] // powers) % self.base                                  # (N, width)
        length = 1 + (n[:, None] >= powers[1:]).sum(dim=1) if width > 1 else torch.ones_like(n)
        return d, length

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> Encoded:
        device, N = a.device, len(a)
        T = self.seq_len
        ids = torch.full((N, T + 1), self.pad, dtype=torch.long, device=device)  # last column: scratch
        digit_ids = self.digit_ids.to(device)
        start = torch.zeros(N, dtype=torch.long, device=device)
        answer_start = None
        for k, (n, width) in enumerate(((a, self.width), (b, self.width), (a + b, self.answer_width))):
            ids.scatter_(1, start[:, None], self.sep)
            d, length = self.digits(n, width)
            i = torch.arange(width, device=device)
            # Reversed: digit i (least significant first) at slot i; otherwise at slot length-1-i.
            slot = i[None, :] if self.reverse else (length[:, None] - 1 - i[None, :])
            col = torch.where(i[None, :] < length[:, None], start[:, None] + 1 + slot, T)
            ids.scatter_(1, col, digit_ids[d])
            if k == 2:
                answer_start = start + 1
            start = start + 1 + length
        ids.scatter_(1, start[:, None], self.sep)                                 # the closing `+`
        ids = ids[:, :T]
        cols = torch.arange(T, device=device)
        mask = (cols[None, :] <= start[:, None]).long()
        answer = (cols[None, :] >= answer_start[:, None]) & mask.bool()
        labels = torch.where(answer, ids, torch.full_like(ids, -100))
        return Encoded(ids, mask, labels)


def answer_labels(ids: torch.Tensor, mask: torch.Tensor, sep_id: int) -> torch.Tensor:
    """(N, T) the answer tokens `C+` (every token after the third `+`), -100 elsewhere."""
    sep = (ids == sep_id).long()
    answer = ((sep.cumsum(1) - sep) >= 3) & mask.bool()
    return torch.where(answer, ids, torch.full_like(ids, -100))


def encode_pairs(tok, encoder: ProblemEncoder | None, a: torch.Tensor, b: torch.Tensor, base: int, reverse: bool) -> Encoded:
    """Token tensors for operand pairs: the tensor encoder when every digit is a token, else the tokenizer."""
    if encoder is not None:
        return encoder(a, b)
    from .numbers import format_problem
    lines = [format_problem(x, y, base, reverse) for x, y in zip(a.tolist(), b.tolist())]
    enc = tok(lines, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"].to(a.device), enc["attention_mask"].to(a.device)
    return Encoded(ids, mask, answer_labels(ids, mask, separator_id(tok)))


def pad_to(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    """Right-pad (N, T) to (N, width)."""
    if t.shape[1] >= width:
        return t
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)
