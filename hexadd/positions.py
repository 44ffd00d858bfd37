"""Position ids (Abacus-style block positions, plain sequential positions, a sinusoidal table) and number ids.

Only torch is imported here: this file travels with published models (trust_remote_code).
"""
import math

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


def block_distance_bias(key_positions: torch.Tensor, attention_mask: torch.Tensor, table: torch.Tensor,
                        query_length: int, window: bool = False) -> torch.Tensor:
    """The additive (B, H, Tq, Tk) attention mask of block_relative models: table[h, d] for the block distance
    d = key position - query position, clipped to +-D ((H, 2D + 1) table); the minimum where a key is later
    than the query or masked, and with `window` where |d| > D. The queries are the last `query_length` keys.

    Clipped, every distance a longer number brings falls into the outermost entries, which training sets
    (as in T5's relative buckets): nothing positional is left untrained, whatever the length. Yet longer
    numbers bring more keys into those entries, and their share of attention grows with the length; a
    window keeps them out, so a query sees the same keys at every length.
    """
    D = (table.shape[1] - 1) // 2
    query_positions = key_positions[:, -query_length:]                                     # (B, Tq)
    distance = key_positions[:, None, :] - query_positions[:, :, None]                     # (B, Tq, Tk)
    bias = table[:, distance.clamp(-D, D) + D].transpose(0, 1)                             # (B, H, Tq, Tk)
    Tk = key_positions.shape[1]
    keys = torch.arange(Tk, device=key_positions.device)
    allowed = (keys[None, :] <= keys[Tk - query_length:, None])[None] & attention_mask.bool()[:, None, :]  # (B, Tq, Tk)
    if window:
        allowed = allowed & (distance.abs() <= D)
    return bias.masked_fill(~allowed[:, None], torch.finfo(bias.dtype).min)
