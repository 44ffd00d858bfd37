"""Batched decoding with a KV cache: single (plain greedy), multi (n tokens a pass) and verified
(self-speculative: heads 2..n draft, head 1 checks them on the next pass).

Not `generate()`: block positions depend on the tokens, so every pass computes `position_ids` from
the whole row and hands them over together with the attention mask and the cache. Rejected drafts
stay in the cache but are masked out, which lets rows in one batch accept different numbers of tokens.
"""
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .model import BLOCK_SCHEMES
from .numbers import DIGITS, SEP, decode_number, format_prompt, num_digits
from .tokenization import separator_id

MODES = ("single", "multi", "verified")


@dataclass
class Answer:
    a: int
    b: int
    value: int | None     # the model's sum in decimal; None when it wrote no well-formed answer
    text: str             # what the model wrote after the prompt
    passes: int           # forward passes until this answer was complete
    note: str | None = None


def positions_needed(model, a: int, b: int) -> int:
    """The largest position id `+A+B+C+` needs: the longest number's digit count for block positions
    (the sum may have one digit more than the longer operand), else the whole sequence's length."""
    c = model.config
    la, lb = num_digits(a, c.base), num_digits(b, c.base)
    if c.position_scheme in BLOCK_SCHEMES:
        return max(la, lb) + 1
    return 4 + la + lb + (max(la, lb) + 1) - 1  # four `+`, A, B and the longest C, numbered from 0


def check_fits(model, a: int, b: int) -> None:
    """A problem whose positions lie beyond the model's position table cannot be run at all (a block_relative
    model has none: it reads only distances)."""
    if model.config.position_scheme == "block_relative":
        return
    need = positions_needed(model, a, b)
    if need >= model.config.n_positions:
        raise ValueError(f"{a}+{b}: needs position {need}, but this model has positions 0..{model.config.n_positions - 1}")


def default_mode(model) -> str:
    return "verified" if model.config.n_predict > 1 else "single"


@torch.no_grad()
def decode(model, tok, pairs: list[tuple[int, int]], mode: str = "single", batch_size: int = 512) -> list[Answer]:
    """Answer a+b for every pair, in order, `batch_size` rows at a time."""
    if mode not in MODES:
        raise ValueError(f"unknown decoding mode {mode!r}")
    model.eval()
    out = []
    for i in range(0, len(pairs), batch_size):
        out += _decode_batch(model, tok, pairs[i:i + batch_size], mode)
    return out


def _decode_batch(model, tok, pairs, mode) -> list[Answer]:
    cfg = model.config
    base, reverse, n = cfg.base, cfg.reverse, cfg.n_predict
    sep, pad = separator_id(tok), tok.pad_token_id
    B = len(pairs)
    dev = next(model.parameters()).device

    # Left-pad the prompts `+A+B+` so every row's next token lands in the same column.
    encoded = [tok.encode(format_prompt(a, b, base, reverse)) for a, b in pairs]
    width = max(map(len, encoded))
    tokens = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=dev)                          # (B, L)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=dev)                    # (B, L)
    # An answer has at most one digit more than the longer operand, then `+`.
    limit = torch.tensor([max(num_digits(a, base), num_digits(b, base)) + 2 for a, b in pairs], device=dev)    # (B,)

    k = 1 if mode == "single" else n                    # tokens fed per pass after the prompt
    written = torch.full((B, int(limit.max()) + k + 1), pad, device=dev)  # the answer tokens; last column is scratch
    length = torch.zeros(B, dtype=torch.long, device=dev)
    passes = torch.zeros(B, dtype=torch.long, device=dev)
    finished = torch.zeros(B, dtype=torch.bool, device=dev)
    cache = DynamicCache(config=cfg)
    feed, n_pass = tokens, 0
    # An answer ends at `+` (or padding), as the reference models were trained; other tokens are parsed later.
    stop_ids = torch.tensor([t for t in (sep, pad, tok.unk_token_id) if t is not None], device=dev)

    while True:
        # Positions and numbers depend on earlier tokens: computed over the whole row, the fed tokens' passed.
        positions, numbers = model.position_ids(tokens, mask), model.number_ids(tokens, mask)  # (B, L)
        fed = slice(-feed.shape[1], None)
        heads = model(feed, attention_mask=mask, position_ids=positions[:, fed], cache=cache, use_cache=True,
                      number_ids=None if numbers is None else numbers[:, fed], key_position_ids=positions).head_logits
        guess = heads.argmax(-1)                        # (n, B, fed): head j's token after each fed slot
        n_pass += 1

        if mode == "single":
            new, count = guess[0, :, -1:], torch.ones(B, dtype=torch.long, device=dev)
            feed = new
        elif mode == "multi":
            new, count = guess[:, :, -1].T, torch.full((B,), n, device=dev)
            feed = new
        else:
            if n_pass == 1:  # the prompt: head 1 gives the first token, heads 2..n its first drafts
                slot, kept = torch.full((B,), feed.shape[1] - 1, device=dev), torch.empty(B, 0, dtype=torch.long, device=dev)
                accepted = torch.zeros(B, dtype=torch.long, device=dev)
            else:
                # Draft i is kept while head 1, reading the slot before it, would have written it too.
                agree = guess[0, :, :-1] == feed[:, 1:]                            # (B, k-1)
                accepted = agree.long().cumprod(dim=1).sum(dim=1)                  # (B,)
                mask[:, -k:] &= torch.arange(k, device=dev) <= accepted[:, None]               # forget rejected slots
                # Slots every row rejected leave the cache for good: fewer holes, and none at batch size 1.
                trim = int(k - 1 - accepted.max())
                if trim:
                    cache.crop(-trim)
                    tokens, mask = tokens[:, :-trim], mask[:, :-trim]
                slot, kept = accepted, feed[:, 1:]
            last = guess[:, torch.arange(B, device=dev), slot]                                 # (n, B) at the last kept slot
            bonus, drafts = last[0], last[1:].T                                    # (B,), (B, n-1)
            new = torch.cat([kept, torch.full((B, 1), pad, device=dev)], dim=1).scatter(1, accepted[:, None], bonus[:, None])
            count = accepted + 1                                                   # kept drafts, then head 1's token
            feed = torch.cat([bonus[:, None], drafts], dim=1)

        # Append this pass's tokens to the rows still writing.
        col = length[:, None] + torch.arange(new.shape[1], device=dev)                        # (B, w)
        keep = (torch.arange(new.shape[1], device=dev) < count[:, None]) & ~finished[:, None]
        written.scatter_(1, torch.where(keep, col, written.shape[1] - 1).clamp(max=written.shape[1] - 1), new)
        length += torch.where(finished, 0, count)
        in_answer = torch.arange(written.shape[1], device=dev) < length[:, None]
        stopped = (in_answer & torch.isin(written, stop_ids)).any(dim=1) | (length >= limit)
        passes = torch.where(stopped & ~finished, n_pass, passes)
        finished |= stopped
        if finished.all():
            break
        tokens = torch.cat([tokens, feed], dim=1)
        mask = torch.cat([mask, torch.ones_like(feed)], dim=1)

    written, length, passes = written.cpu(), length.cpu(), passes.cpu()
    return [_parse(a, b, written[r, :length[r]].tolist(), int(passes[r]), tok, sep, base, reverse)
            for r, (a, b) in enumerate(pairs)]


def _parse(a, b, ids, passes, tok, sep, base, reverse) -> Answer:
    """The answer is base-`base` digits then `+`; anything else is marked wrong, never raised."""
    pieces = tok.convert_ids_to_tokens(ids)
    if sep in ids:
        pieces = pieces[: ids.index(sep) + 1]
    text = "".join(pieces)
    digits = text[:-1] if text.endswith(SEP) else text
    bad = next((c for c in digits if c not in DIGITS[:base]), None)
    if bad is not None:
        return Answer(a, b, None, text, passes, f"the model wrote {bad!r}, not a base-{base} digit")
    if not text.endswith(SEP) or not digits:
        return Answer(a, b, None, text, passes, f"the model did not finish its answer with {SEP!r}")
    return Answer(a, b, decode_number(digits, base, reverse), text, passes)
