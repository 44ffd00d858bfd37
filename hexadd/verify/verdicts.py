"""Teacher-forced verdicts: with head 1's argmax fed back, greedy decoding's answer is the argmax at every answer
position, so one forward pass per problem says whether greedy decoding gets it right, and by how much (the
margin). Every check builds on these: the held-out split, the fresh checks and gate, certificates, grids, bands.
"""
import contextlib

import torch

from ..data.encoding import Encoded, encode_pairs
from ..modeling.model import head_targets

# Rows a forward pass on a CPU: 256 keep the activations in cache, 1.5-1.75x the problems/s of 4,096 on 2 cores.
CPU_ROWS = 256
# Tokens a forward pass at most, so that long problems go a few rows at a time (activations grow with rows x tokens).
PASS_TOKENS = {"cpu": 1 << 16}
DEVICE_TOKENS = 1 << 22


@torch.inference_mode()
def head1_logits(model, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
    """Head 1's logits after each token (teacher forced) and the targets there (-100 outside the answer): from
    the first position where any row has a target, (N, W, V) and (N, W)."""
    ids, mask, labels = enc.input_ids[:, :-1], enc.attention_mask[:, :-1], enc.labels[:, 1:]
    start = int(answer_start(labels).min())
    return model.head1_logits_from(ids, mask, start), labels[:, start:]


def head1_guess(model, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
    """Head 1's argmax after each token (teacher forced) and the targets there, as head1_logits."""
    logits, labels = head1_logits(model, enc)
    return logits.argmax(-1), labels


def answer_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) each row's smallest lead, over its answer tokens, of the right token's logit over the highest other
    one: below 0 the row is wrong, and a thin lead marks a family whose errors are too rare to sample."""
    logits = logits.float()
    target = labels.clamp(min=0)[..., None]
    lead = logits.gather(-1, target)[..., 0] - logits.scatter(-1, target, float("-inf")).max(-1).values
    return torch.where(labels != -100, lead, torch.inf).min(dim=1).values


def answer_start(labels: torch.Tensor) -> torch.Tensor:
    """(N,) each row's first position with a target (0 for a row without one)."""
    return (labels != -100).int().argmax(dim=1)


def _passes(model, enc: Encoded, rows: int | None):
    """(row indices, their Encoded) `rows` at a time (default: CPU_ROWS on a CPU, all at once elsewhere).
    Rows of equal answer start go together, shortest first, each pass only as wide as its longest row:
    padding after a row's end cannot change it (causal attention). Rows must be padded on the right, as
    every encoder here pads them."""
    n = len(enc.input_ids)
    device = next(model.parameters()).device.type
    if rows is None:
        rows = CPU_ROWS if device == "cpu" else n
    rows = max(1, min(rows, PASS_TOKENS.get(device, DEVICE_TOKENS) // enc.input_ids.shape[1]))
    lengths = enc.attention_mask.sum(dim=1)
    if rows < n:
        order = torch.argsort(answer_start(enc.labels[:, 1:]) * (enc.input_ids.shape[1] + 1) + lengths, stable=True)
    else:
        order = torch.arange(n, device=lengths.device)
    for i in range(0, n, rows):
        idx = order[i:i + rows]
        width = int(lengths[idx].max())
        yield idx, Encoded(enc.input_ids[idx, :width], enc.attention_mask[idx, :width], enc.labels[idx, :width])


def head1_correct(model, enc: Encoded, rows: int | None = None) -> torch.Tensor:
    """(N,) bool: head 1's argmax is the answer token at every answer position (teacher forced), `rows` at a
    time (see _passes)."""
    ok = torch.empty(len(enc.input_ids), dtype=torch.bool, device=enc.input_ids.device)
    for idx, part in _passes(model, enc, rows):
        guess, labels = head1_guess(model, part)
        ok[idx] = ((guess == labels) | (labels == -100)).all(dim=1)
    return ok


def head1_margin(model, enc: Encoded, rows: int | None = None) -> torch.Tensor:
    """(N,) each problem's answer_margin (teacher forced), `rows` at a time (see _passes)."""
    return head1_verdicts(model, enc, rows)[1]


def head1_verdicts(model, enc: Encoded, rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """head1_correct and each problem's answer_margin from one forward pass, `rows` at a time (see _passes)."""
    ok = torch.empty(len(enc.input_ids), dtype=torch.bool, device=enc.input_ids.device)
    margin = torch.empty(len(enc.input_ids), device=enc.input_ids.device)
    for idx, part in _passes(model, enc, rows):
        logits, labels = head1_logits(model, part)
        ok[idx] = ((logits.argmax(-1) == labels) | (labels == -100)).all(dim=1)
        margin[idx] = answer_margin(logits, labels)
    return ok, margin


@torch.no_grad()
def pair_verdicts(model, tok, encoder, pairs: torch.Tensor, batch_size: int = 1024, autocast=None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """head1_verdicts of (N, 2) operand pairs, `batch_size` at a time, on the CPU; `encoder` None encodes with
    the tokenizer (one that merges digits)."""
    c = model.config
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ok, margin = [torch.empty(0, dtype=torch.bool)], [torch.empty(0)]
    try:
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size].to(device)
            with autocast or contextlib.nullcontext():
                enc = encode_pairs(tok, encoder, chunk[:, 0], chunk[:, 1], c.base, c.reverse)
                enc = Encoded(*(t.to(device) for t in (enc.input_ids, enc.attention_mask, enc.labels)))
                o, m = head1_verdicts(model, enc)
            ok.append(o.cpu())
            margin.append(m.cpu())
    finally:
        model.train(was_training)
    return torch.cat(ok), torch.cat(margin)


@torch.no_grad()
def split_accuracy(model, split, batch_size: int = 512, rank: int = 0, world: int = 1, reduce=None,
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
            target = head_targets(labels, j, model.config.windowed)  # (B, T-j)
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
