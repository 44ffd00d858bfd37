"""Position ids (Abacus-style block positions, plain sequential positions, a sinusoidal table), number ids, and the
window of keys a block-window model attends to.

Only torch is imported here: this file travels with published models (trust_remote_code).
"""
import math
from dataclasses import dataclass, field, replace

import torch

NUMBERS = 4  # first operand, second operand, answer, after the answer


def block_position_ids(input_ids: torch.Tensor, digit_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The k-th digit token of a number gets k (1-based); `+` and padding get 0.

    `+1342+879+2221+` -> 0 1 2 3 4 0 1 2 3 0 1 2 3 4 0. Masked slots (padding, rejected drafts)
    neither count as digits nor end a number, so a row reads as if they were not there.
    """
    valid = attention_mask.bool()                             # (B, T)
    digit = torch.isin(input_ids, digit_ids) & valid          # (B, T)
    count = digit.long().cumsum(dim=1)                        # digits seen so far
    boundary = valid & ~digit                                  # a `+` ends the current number
    at_boundary = torch.where(boundary, count, torch.zeros_like(count)).cummax(dim=1).values
    return (count - at_boundary) * digit                      # (B, T)


def number_ids(input_ids: torch.Tensor, digit_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Which number a token belongs to: 0 the first operand, 1 the second, 2 the answer, 3 after it.

    A `+` starts the number after it: `+12+3+15+` -> 0 0 0 1 1 2 2 2 3. Padding gets 0, and masked slots
    do not count, as for block positions.
    """
    valid = attention_mask.bool()
    separator = valid & ~torch.isin(input_ids, digit_ids)
    return ((separator.long().cumsum(dim=1) - 1).clamp(0, NUMBERS - 1)) * valid


def sequential_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the unmasked tokens of each row (left padding and skipped slots do not count)."""
    mask = attention_mask.long()
    return (mask.cumsum(dim=1) - 1).clamp(min=0) * mask


def sinusoidal_table(n_positions: int, dim: int, theta: float = 10000.0) -> torch.Tensor:
    """The fixed (n_positions, dim) table of Vaswani et al., with frequency base `theta`."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(theta) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


@dataclass
class Window:
    """The keys each query of a block-window model attends to. For every number (first operand, second, answer,
    after it) and every block distance d in -D..D: the key of that number at the query's block position + d, where
    there is one that is valid and not later than the query. At most 4 (2D + 1) keys a query, whatever the length:
    memory and work grow with the number of tokens, not its square."""
    index: torch.Tensor     # (B, Tq, K) each candidate's key column (0 where not allowed)
    allowed: torch.Tensor   # (B, Tq, K)
    distance: torch.Tensor  # (K,) each candidate's key position minus query position, in -D..D
    bias: torch.Tensor | None = None  # (H, 2D + 1) the attention bias by distance, of the layers it goes to
    _scores: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def keys_used(self) -> int:
        """Key columns up to the last one any query reads: a preallocated cache's unfilled end is never read."""
        return int(self.index.max()) + 1 if self.index.numel() else 1

    def dense_bias(self, keys: int, dtype: torch.dtype) -> torch.Tensor:
        """(B, H, Tq, keys) what a dense tile adds to the scores: the bias at the window's keys, the dtype's lowest
        value elsewhere (not -inf: a padding query with no key must not turn into NaN). Without gradients it is
        built once for every layer sharing this window (and bias); in training each layer builds its own, so the
        bias's gradient sums as it always has."""
        memo = (keys, dtype)
        if memo in self._scores:
            return self._scores[memo]
        B, Tq, K = self.allowed.shape
        D = (self.bias.shape[1] - 1) // 2
        bias = self.bias[:, self.distance + D].to(dtype)                                        # (H, K)
        H = bias.shape[0]
        cols = torch.where(self.allowed, self.index, keys)[:, None].expand(B, H, Tq, K)        # keys: a scratch column
        scores = bias.new_full((B, H, Tq, keys + 1), torch.finfo(dtype).min)
        scores = scores.scatter_(-1, cols, bias[None, :, None].expand(B, H, Tq, K))[..., :keys]
        if not torch.is_grad_enabled():
            self._scores[memo] = scores
        return scores

    def rows(self, start: int) -> "Window":
        """The window of the queries from `start` on."""
        return replace(self, index=self.index[:, start:], allowed=self.allowed[:, start:])

    def with_bias(self, bias: torch.Tensor) -> "Window":
        return replace(self, bias=bias)

    def dense(self, weights: torch.Tensor, keys: int) -> torch.Tensor:
        """(B, H, Tq, K) attention weights of the window's keys as (B, H, Tq, keys), 0 for every other key."""
        B, H, Tq, K = weights.shape
        cols = torch.where(self.allowed, self.index, keys)[:, None].expand(B, H, Tq, K)  # keys: a scratch column
        return weights.new_zeros(B, H, Tq, keys + 1).scatter_(-1, cols, weights)[..., :keys]


class KeyTable:
    """Each row's key column by (number, block position), so that a window is found by look-ups, not by comparing
    every key with every query. Columns are added as tokens arrive (decoding adds a few a pass); a look-up checks
    that the key it finds still has that number and position, so a column reused or masked since is not taken."""

    def __init__(self, rows: int, positions: int, distance: int, device=None):
        self.D = distance
        self.width = positions + 2 * distance   # per number: block positions -D .. positions + D - 1
        # The last slot is a scratch slot that masked columns write to and no look-up reads.
        self.slots = torch.full((rows, NUMBERS * self.width + 1), -1, dtype=torch.long, device=device)

    def add(self, columns: torch.Tensor, positions: torch.Tensor, numbers: torch.Tensor, valid: torch.Tensor) -> None:
        """Record (B, k) columns with their block positions, numbers and validity."""
        slot = torch.where(valid.bool(), numbers * self.width + positions + self.D, self.slots.shape[1] - 1)
        self.slots.scatter_(1, slot, columns)

    def window(self, columns: torch.Tensor, positions: torch.Tensor, key_positions: torch.Tensor,
               key_numbers: torch.Tensor, key_valid: torch.Tensor) -> Window:
        """The window of the queries at (B, Tq) `columns` with block `positions`, over keys described by
        (B, Tk) `key_positions`, `key_numbers` and `key_valid`."""
        D, device = self.D, self.slots.device
        d = torch.arange(-D, D + 1, device=device)
        number = torch.arange(NUMBERS, device=device).repeat_interleave(2 * D + 1)      # (K,)
        distance = d.repeat(NUMBERS)                                                    # (K,)
        look = positions[..., None] + number * self.width + D + distance               # (B, Tq, K)
        index = self.slots.gather(1, look.flatten(1)).view(look.shape)
        found = index >= 0
        index = index.clamp(min=0)

        def at(t):  # (B, Tk) -> (B, Tq, K): the keys' values at the candidates
            return t.gather(1, index.flatten(1)).view(index.shape)

        allowed = (found & (index <= columns[..., None]) & at(key_valid).bool()
                   & (at(key_numbers) == number) & (at(key_positions) == positions[..., None] + distance))
        return Window(index * allowed, allowed, distance)


def block_window(positions: torch.Tensor, numbers: torch.Tensor, valid: torch.Tensor, distance: int) -> Window:
    """The window of every token of whole (B, T) rows (no cache)."""
    B, T = positions.shape
    table = KeyTable(B, int(positions.max()) + 1 if T else 1, distance, positions.device)
    columns = torch.arange(T, device=positions.device).expand(B, T)
    table.add(columns, positions, numbers, valid)
    return table.window(columns, positions, positions, numbers, valid)
