"""Problems built as token tensors directly from operands: no strings, no tokenizer call.

`+A+B+C+` for a whole batch at memory speed. Operands come as int64 tensors (digits by
`(n // base**i) % base`) or, for any length, as digit arrays (least significant digit first) with
their lengths; the sum's digits are added column by column with a carry, so nothing overflows. The
digits are written, reversed or not, into a right-padded (N, T) tensor by per-row write positions.
Every digit must be its own token (the default tokenizer); a tokenizer that merges digits is refused
here, and callers fall back to `tok(...)` on strings. Equality with the tokenizer is checked in the tests.
"""
from dataclasses import dataclass

import torch

from ..common.errors import ModelError
from .numbers import DIGITS, format_problem, num_digits, to_base
from .tokenizer import separator_id

INT64_MAX = 2**63 - 1


@dataclass
class Encoded:
    input_ids: torch.Tensor       # (N, T) right-padded `+A+B+C+`
    attention_mask: torch.Tensor  # (N, T)
    labels: torch.Tensor          # (N, T) the answer tokens `C+`, -100 elsewhere


def int64_digits(n: torch.Tensor, base: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, width) digit values of int64 operands, least significant first, and (N,) digit counts (0 has one)."""
    powers = base ** torch.arange(width, dtype=torch.long, device=n.device)
    d = (n[:, None] // powers) % base                                       # (N, width)
    length = 1 + (n[:, None] >= powers[1:]).sum(dim=1) if width > 1 else torch.ones_like(n)
    return d, length


def int_digits(values: list[int], base: int, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same for Python integers of any size (slower: one string per number)."""
    strings = [to_base(v, base)[::-1] for v in values]
    width = width or max(map(len, strings), default=1)
    d = torch.tensor([[DIGITS.index(ch) for ch in s] + [0] * (width - len(s)) for s in strings], dtype=torch.long)
    return d.view(len(values), width), torch.tensor([len(s) for s in strings], dtype=torch.long)


def operand_digits(values, base: int, width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits and lengths of an int64 tensor or of a list of Python integers."""
    if isinstance(values, torch.Tensor):
        return int64_digits(values.to(device), base, width)
    d, length = int_digits(values, base, width)
    return d.to(device), length.to(device)


def digits_to_int(d: list[int], base: int) -> int:
    """Digit values, least significant first -> the Python integer."""
    n = 0
    for x in reversed(d):
        n = n * base + x
    return n


def add_digits(da: torch.Tensor, db: torch.Tensor, base: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column-by-column sum of two (N, W) digit arrays: (N, W+1) digits, (N,) length, (N, W+1) carry out of each column."""
    W = max(da.shape[1], db.shape[1]) + 1
    da = torch.nn.functional.pad(da, (0, W - da.shape[1]))
    db = torch.nn.functional.pad(db, (0, W - db.shape[1]))
    dc, carries = torch.empty_like(da), torch.empty_like(da)
    carry = torch.zeros_like(da[:, 0])
    for i in range(W):
        s = da[:, i] + db[:, i] + carry
        dc[:, i], carry = s % base, s // base
        carries[:, i] = carry
    cols = torch.arange(1, W + 1, device=da.device)
    length = ((dc != 0) * cols).max(dim=1).values.clamp(min=1)
    return dc, length, carries


def carry_chain(da: torch.Tensor, db: torch.Tensor, base: int) -> torch.Tensor:
    """(N,) the longest run of consecutive carries when adding two (N, W) digit arrays."""
    carries = add_digits(da, db, base)[2]
    run = longest = torch.zeros_like(carries[:, 0])
    for i in range(carries.shape[1]):
        run = (run + 1) * carries[:, i]
        longest = torch.maximum(longest, run)
    return longest


class ProblemEncoder:
    """Turns operands (int64 tensors within [lo, hi], or digit arrays of any length) into `+A+B+C+` token tensors."""
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

    @staticmethod
    def merges_digits(tok) -> bool:
        """True when some token holds several characters (BPE merges): then only the tokenizer can encode."""
        return any(len(t) > 1 and all(c in DIGITS for c in t) for t in tok.get_vocab())

    def digits(self, n: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        return int64_digits(n, self.base, width)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> Encoded:
        """int64 operands; the tensors are as wide as the longest problem of the range."""
        enc = self.encode_digits(*self.digits(a, self.width), *self.digits(b, self.width))
        return Encoded(*(pad_to(t, self.seq_len, v) for t, v in
                         ((enc.input_ids, self.pad), (enc.attention_mask, 0), (enc.labels, -100))))

    def encode_digits(self, da: torch.Tensor, la: torch.Tensor, db: torch.Tensor, lb: torch.Tensor) -> Encoded:
        """Operands as (N, W) digit arrays, least significant first, with their (N,) lengths; the tensors are
        as wide as this batch's longest problem."""
        device, N = da.device, len(da)
        dc, lc, _ = add_digits(da, db, self.base)
        T = 4 + int((la + lb + lc).max())
        ids = torch.full((N, T + 1), self.pad, dtype=torch.long, device=device)  # last column: scratch
        digit_ids = self.digit_ids.to(device)
        start = torch.zeros(N, dtype=torch.long, device=device)
        answer_start = None
        for k, (d, length) in enumerate(((da, la), (db, lb), (dc, lc))):
            ids.scatter_(1, start[:, None], self.sep)
            i = torch.arange(d.shape[1], device=device)
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


def encode_pairs(tok, encoder: ProblemEncoder | None, a, b, base: int, reverse: bool) -> Encoded:
    """Token tensors for operand pairs (int64 tensors, or lists of Python integers of any size): the tensor
    encoder when every digit is a token, else the tokenizer."""
    if encoder is not None:
        if isinstance(a, torch.Tensor):
            return encoder(a, b)
        width = num_digits(max(max(a), max(b)), base)
        return encoder.encode_digits(*operand_digits(a, base, width), *operand_digits(b, base, width))
    device = a.device if isinstance(a, torch.Tensor) else None
    a, b = (x.tolist() if isinstance(x, torch.Tensor) else x for x in (a, b))
    lines = [format_problem(x, y, base, reverse) for x, y in zip(a, b)]
    enc = tok(lines, padding=True, padding_side="right", return_tensors="pt")  # checks cut rows after their end
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    return Encoded(ids, mask, answer_labels(ids, mask, separator_id(tok)))


def pad_to(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    """Right-pad (N, T) to (N, width)."""
    if t.shape[1] >= width:
        return t
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)
