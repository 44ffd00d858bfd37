"""Batched decoding with a KV cache: single (plain greedy), multi (n tokens a pass) and verified
(self-speculative: heads 2..n draft, head 1 checks them on the next pass).

Not `generate()`: block positions depend on the tokens, so each pass works out the fed tokens' `position_ids`
(and numbers, and for block-window models their window of keys) from the tokens before them and hands them
over with the attention mask and a preallocated cache. Rejected drafts stay in the cache but are masked out,
which lets rows in one batch accept different numbers of tokens.
"""
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, StaticLayer

from ..modeling.positions import NUMBERS, KeyTable
from ..data.numbers import DIGITS, SEP, decode_number, format_prompt, num_digits
from ..data.tokenizer import separator_id

MODES = ("single", "multi", "verified")


@dataclass
class Answer:
    a: int
    b: int
    value: int | None     # the model's sum in decimal; None when it wrote no well-formed answer
    text: str             # what the model wrote after the prompt
    passes: int           # forward passes until this answer was complete
    note: str | None = None


def check_fits(model, a: int, b: int) -> None:
    """A problem whose positions lie beyond the model's position table cannot be run at all (a windowed model has
    no table: it reads only distances)."""
    c = model.config
    need = c.scheme.positions_for(num_digits(a, c.base), num_digits(b, c.base))
    if need is not None and need > c.n_positions:
        raise ValueError(f"{a}+{b}: needs position {need - 1}, but this model has positions 0..{c.n_positions - 1}")


def default_mode(model) -> str:
    return "verified" if model.config.n_predict > 1 else "single"


@torch.no_grad()
def decode(model, tok, pairs: list[tuple[int, int]], mode: str = "single", batch_size: int = 512) -> list[Answer]:
    """Answer a+b for every pair, in order, `batch_size` rows at a time."""
    if mode not in MODES:
        raise ValueError(f"unknown decoding mode {mode!r}")
    model.eval()
    out = []
    batch_size = min(batch_size, decode_rows(model.config, pairs)) if pairs else batch_size
    for i in range(0, len(pairs), batch_size):
        out += _decode_batch(model, tok, pairs[i:i + batch_size], mode)
    return out


def decode_rows(config, pairs, budget: int = 1 << 17) -> int:
    """Rows a decoding batch may hold: every row keeps keys and values for all its tokens, so very long problems
    go fewer at a time (`budget` token columns a batch)."""
    longest = max(max(num_digits(a, config.base), num_digits(b, config.base)) for a, b in pairs)
    return max(1, budget // (4 * longest + 8))


def _decode_batch(model, tok, pairs, mode) -> list[Answer]:
    cfg = model.config
    base, reverse, n = cfg.base, cfg.reverse, cfg.n_predict
    sep, pad = separator_id(tok), tok.pad_token_id
    B = len(pairs)
    dev = next(model.parameters()).device
    rows = torch.arange(B, device=dev)

    # Left-pad the prompts `+A+B+` so every row's next token lands in the same column.
    encoded = [tok.encode(format_prompt(a, b, base, reverse)) for a, b in pairs]
    L = max(map(len, encoded))
    # An answer has at most one digit more than the longer operand, then `+`.
    limit = torch.tensor([max(num_digits(a, base), num_digits(b, base)) + 2 for a, b in pairs], device=dev)    # (B,)
    k = 1 if mode == "single" else n                    # tokens fed per pass after the prompt
    heads = 1 if mode == "single" else n
    blocks = cfg.draft_head == "block" and heads > 1
    # Every pass writes at least one answer token of every unfinished row: at most limit + 1 passes.
    T = L + (int(limit.max()) + 2) * k

    # The rows as they grow, preallocated: each pass writes its few columns and reads only what it needs, so a
    # pass costs the same at any length (block-window models; the others attend to every column anyway).
    ids = torch.full((B, T), pad, device=dev)
    valid = torch.zeros(B, T, dtype=torch.long, device=dev)
    ids[:, :L] = torch.tensor([[pad] * (L - len(e)) + e for e in encoded], device=dev)
    valid[:, :L] = torch.tensor([[0] * (L - len(e)) + [1] * len(e) for e in encoded], device=dev)
    positions, numbers = torch.zeros_like(ids), torch.zeros_like(ids)
    positions[:, :L], numbers[:, :L] = model.position_ids(ids[:, :L], valid[:, :L]), model.number_ids(ids[:, :L], valid[:, :L])
    block = cfg.scheme.block
    is_digit = torch.zeros(len(tok), dtype=torch.bool, device=dev)
    is_digit[model.digit_ids(dev)] = True
    steps = torch.arange(n + 1, device=dev)
    cache = Cache(layers=[StaticLayer(max_cache_len=T) for _ in range(cache_layers(model, heads))])
    table = KeyTable(B, T, cfg.window, dev) if cfg.windowed else None

    written = torch.full((B, int(limit.max()) + k + 1), pad, device=dev)  # the answer tokens; last column is scratch
    length = torch.zeros(B, dtype=torch.long, device=dev)
    passes = torch.zeros(B, dtype=torch.long, device=dev)
    finished = torch.zeros(B, dtype=torch.bool, device=dev)
    # An answer ends at `+` (or padding), as the reference models were trained; other tokens are parsed later.
    stop_ids = torch.tensor([t for t in (sep, pad, tok.unk_token_id) if t is not None], device=dev)
    cur, width, n_pass = 0, L, 0                         # the fed columns: cur .. cur + width - 1

    while True:
        fed = slice(cur, cur + width)
        window = None
        if table is not None:
            cols = torch.arange(cur, cur + width, device=dev).expand(B, width)
            table.add(cols, positions[:, fed], numbers[:, fed], valid[:, fed])
            window = table.window(cols, positions[:, fed], positions, numbers, valid)
        # The trunk and head 1 run first; the drafting heads only where the drafts are read, at each row's last
        # kept slot (draft blocks also read head 1's choice, the token before their target).
        out = model(ids[:, fed], attention_mask=valid, position_ids=positions[:, fed], number_ids=numbers[:, fed],
                    window=window, cache=cache, use_cache=True, heads=1)
        guess = out.logits.argmax(-1)                   # (B, width): head 1's token after each fed slot
        n_pass += 1
        last = width - 1                                 # the fed slot the next tokens follow

        if mode == "single":
            new, count, feed = guess[:, -1:], torch.ones(B, dtype=torch.long, device=dev), guess[:, -1:]
        else:
            if mode == "multi" or n_pass == 1:  # all fed tokens kept: the next follow the last slot
                kept, accepted = ids[:, cur + 1:cur + width], torch.full((B,), width - 1, device=dev)
            else:
                # Draft i is kept while head 1, reading the slot before it, would have written it too.
                agree = guess[:, :-1] == ids[:, cur + 1:cur + width]                    # (B, k-1)
                accepted = agree.long().cumprod(dim=1).sum(dim=1)                      # (B,)
                valid[:, fed] *= torch.arange(width, device=dev) <= accepted[:, None]    # forget rejected slots
                kept = ids[:, cur + 1:cur + width]
            bonus = guess[rows, accepted]                                              # (B,) head 1 at the last kept slot
            if blocks:
                drafts = _draft(model, out, ids[:, fed], bonus, accepted, n, valid, positions[:, fed], cache, window,
                                prompt=n_pass == 1)
            else:
                state = out.state[rows, accepted]                                      # (B, C)
                drafts = torch.stack([model.draft(j, state)[1].argmax(-1) for j in range(2, n + 1)], dim=1)
            if mode == "multi" or n_pass == 1:
                new, count = torch.cat([bonus[:, None], drafts], dim=1), torch.full((B,), n, device=dev)
                if mode == "verified":  # the prompt's pass: the drafts are fed, not yet written
                    new, count = bonus[:, None], torch.ones(B, dtype=torch.long, device=dev)
            else:
                new = torch.cat([kept, torch.full((B, 1), pad, device=dev)], dim=1).scatter(1, accepted[:, None], bonus[:, None])
                count = accepted + 1                                                   # kept drafts, then head 1's token
            feed = torch.cat([bonus[:, None], drafts], dim=1) if mode == "verified" else new
            last = accepted

        # Append this pass's tokens to the rows still writing; a row is done at its first stop token.
        col = length[:, None] + torch.arange(new.shape[1], device=dev)                            # (B, w)
        keep = (torch.arange(new.shape[1], device=dev) < count[:, None]) & ~finished[:, None]
        written.scatter_(1, torch.where(keep, col, written.shape[1] - 1).clamp(max=written.shape[1] - 1), new)
        length = torch.minimum(length + torch.where(finished, 0, count), limit)  # greedy's text, past a missing `+` too
        stopped = (keep & torch.isin(new, stop_ids)).any(dim=1) | (length >= limit)
        passes = torch.where(stopped & ~finished, n_pass, passes)
        finished |= stopped
        if finished.all():
            break

        # The next feed follows the last kept slot; slots every row rejected leave the cache for good.
        prev = cur + last if isinstance(last, torch.Tensor) else torch.full((B,), cur + last, device=dev)
        cur += width
        if mode == "verified" and n_pass > 1:
            trim = int(width - 1 - accepted.max())
            if trim:
                cache.crop(-trim)
                cur -= trim
        width = feed.shape[1]
        fed = slice(cur, cur + width)
        ids[:, fed], valid[:, fed] = feed, 1
        positions[:, fed], numbers[:, fed] = _next_positions(feed, is_digit, positions[rows, prev], numbers[rows, prev],
                                                             steps[:width], block)

    written, length, passes = written.cpu(), length.cpu(), passes.cpu()
    return [_parse(a, b, written[r, :length[r]].tolist(), int(passes[r]), tok, sep, base, reverse)
            for r, (a, b) in enumerate(pairs)]


def _draft(model, out, fed, bonus, accepted, n, valid, positions, cache, window, prompt: bool) -> torch.Tensor:
    """(B, n-1) the draft blocks' tokens at each row's last kept slot. Block j reads, beside every fed slot s,
    token s+j-1 of the row as it now stands: the kept fed tokens, head 1's `bonus`, then the drafts so far.
    Every fed slot goes through the blocks, so their caches hold each slot's keys and values. In the prompt's
    pass, whose last slot alone is read, the last block computes its output there only. A later pass feeds at
    most n slots: skipping one would save one slot's MLP for a dozen more operations, a loss at small batches."""
    B, width = fed.shape
    rows = torch.arange(B, device=fed.device)
    stream = torch.cat([fed, torch.full((B, n), model.config.pad_token_id, device=fed.device)], dim=1)
    stream[rows, accepted + 1] = bonus
    kwargs = model.draft_kwargs(out.state, valid, positions, fed, cache, window, True)
    state, drafts, start = out.state, [], width - 1 if prompt else 0
    for j in range(2, n + 1):
        tokens = stream[:, j - 1:j - 1 + width]                                           # (B, width)
        first = start if j == n else 0
        state, logits = model.draft(j, state, tokens, start=first, **kwargs)
        drafts.append(logits.argmax(-1)[rows, accepted - first])
        stream[rows, accepted + j] = drafts[-1]
    return torch.stack(drafts, dim=1)


def _next_positions(feed, is_digit, pos, num, steps, block: bool):
    """(B, k) block positions (or sequential ones) and numbers of fed tokens, from the (B,) position and number
    of the token before them: a digit counts on, any other token starts the next number at 0."""
    digit = is_digit[feed]                                                                   # (B, k)
    if not block:
        positions = pos[:, None] + 1 + steps
    else:
        last_break = torch.where(digit, -1, steps).cummax(dim=1).values                      # (B, k): -1 if none yet
        positions = torch.where(last_break < 0, pos[:, None] + 1 + steps, steps - last_break)
    numbers = (num[:, None] + (~digit).long().cumsum(dim=1)).clamp(max=NUMBERS - 1)
    return positions, numbers


def cache_layers(model, heads: int) -> int:
    """Cache layers a pass with `heads` heads fills: the trunk's, then one per draft block computed."""
    c = model.config
    return c.n_layer + (heads - 1 if c.draft_head == "block" else 0)


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
