"""Certification: exact match of a model over its whole trained operand range.

Every pair in `(min_operand..max_operand)^2` when that is affordable (or asked for), otherwise a seeded
uniform sample of the whole range, training problems included (users ask those too). One
teacher-forced forward pass per problem: head-1 argmax equal to the answer at every answer position
is exactly "greedy decoding returns the right answer". Problems are built as tensors in chunks, so
memory stays constant for any N, and chunks are dealt round-robin to the processes of a distributed
run. Ranges whose sums leave 64-bit integers are sampled as Python integers and built from digit
arrays: slower, and as exact. What it finds is a `certificate.Certificate`.

    python3 inference.py --certify                 # 10^6 sampled problems (or all, if fewer)
    python3 inference.py --certify all             # every problem in range
"""
import contextlib
import functools
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .certificate import WRONG_FILE, Certificate, merge, save
from ..data.encoding import INT64_MAX, Encoded, ProblemEncoder, carry_chain, encode_pairs, operand_digits
from ..common import rng as rng_streams
from ..common.io import atomic_open
from .search import POPULATION, search
from .verdicts import head1_correct, head1_verdicts, pair_verdicts
from ..inference.decoding import decode

DEFAULT_SAMPLES = 1_000_000
DECODED_WRONG = 10_000  # wrong problems whose actual greedy answer goes into the wrong file



def operand_chunks(lo: int, hi: int, n: int | None, seed: int, chunk: int, rank: int = 0, world: int = 1):
    """Yield (a, b) int64 chunks: every pair when n is None, else n uniform pairs; lists of Python
    integers when sums would leave int64.

    Chunk k is fixed by (seed, k) alone and goes to process k % world, so the problems checked do not
    depend on the number of processes.
    """
    m = hi - lo + 1
    total = m * m if n is None else n
    for k, start in enumerate(range(0, total, chunk)):
        if k % world != rank:
            continue
        size = min(chunk, total - start)
        if n is None:
            i = torch.arange(start, start + size, dtype=torch.long)
            yield lo + i // m, lo + i % m
        elif 2 * hi > INT64_MAX:
            rng = rng_streams.python_random(seed, rng_streams.CERTIFY, k)
            yield [rng.randint(lo, hi) for _ in range(size)], [rng.randint(lo, hi) for _ in range(size)]
        else:
            g = rng_streams.generator(seed, rng_streams.CERTIFY, k)
            yield (torch.randint(lo, hi + 1, (size,), generator=g, dtype=torch.long),
                   torch.randint(lo, hi + 1, (size,), generator=g, dtype=torch.long))


def certify(model, tok, n: int | None = DEFAULT_SAMPLES, seed: int = 0, batch_size: int = 4096,
            wrong_path: str | Path | None = None, rank: int = 0, world: int = 1, progress: bool = True,
            search_rounds: int = 0, operands: tuple[int, int] | None = None) -> Certificate:
    """Check `n` sampled problems (or every problem when n is None, or when the range holds no more than n) of
    the model's trained operand range, or of `operands` (lo, hi),
    drawn in chunks of `batch_size` (the chunks fix which problems a seed checks). With `search_rounds`, then
    search for wrong problems among the neighbours of the thinnest checked (search_errors).

    Wrong problems go to `wrong_path` as `a+b=answer (expected c)`, the answer by greedy decoding for
    the first DECODED_WRONG of them. A distributed run merges its shards with `certificate.merge`.
    """

    c = model.config
    lo, hi = operands or (c.min_operand, c.max_operand)
    if n is not None and (hi - lo + 1) ** 2 <= n:
        n = None
    total = (hi - lo + 1) ** 2 if n is None else n
    chunks = -(-total // batch_size)
    share = len(range(rank, chunks, world)) * batch_size  # this process's problems: chunks k = rank mod world
    if (chunks - 1) % world == rank:
        share -= chunks * batch_size - total             # ... the last of them short
    encoder = ProblemEncoder(tok, c.base, c.reverse, hi)  # also sorts operands by digit count
    # A tokenizer that merges digits writes some digit pairs as one token: only the tokenizer can encode for it.
    tensor_encoder = None if ProblemEncoder.merges_digits(tok) else encoder
    cert = Certificate(lo, hi, c.base, exhaustive=n is None, seed=None if n is None else seed)
    device = next(model.parameters()).device
    cert.device = str(device)
    was_training = model.training
    model.eval()
    bar = tqdm(total=share, desc="certify", unit="problem", unit_scale=True, disable=not progress or None, leave=False)
    width = encoder.width
    cells = (width + 1) ** 2
    length_wrong = torch.zeros(cells, dtype=torch.long, device=device)   # (digits a) * (width + 1) + digits b
    length_total = torch.zeros_like(length_wrong)
    carry_wrong = torch.zeros(width + 2, dtype=torch.long, device=device)
    carry_total = torch.zeros_like(carry_wrong)
    t0 = time.perf_counter()
    with atomic_open(wrong_path) if wrong_path is not None else contextlib.nullcontext() as f:
        try:
            for a, b in operand_chunks(lo, hi, n, seed, batch_size, rank, world):
                (da, la), (db, lb) = (operand_digits(x, c.base, width, device) for x in (a, b))
                if tensor_encoder is not None:
                    enc = encoder.encode_digits(da, la, db, lb)
                else:
                    enc = encode_pairs(tok, None, a, b, c.base, c.reverse)
                    enc = Encoded(*(t.to(device) for t in (enc.input_ids, enc.attention_mask, enc.labels)))
                if search_rounds and n is not None and isinstance(a, torch.Tensor):  # exhaustive: nothing left to find
                    ok, margin = head1_verdicts(model, enc)
                    cert.pool = thinnest(torch.stack([a, b], 1).cpu(), margin.cpu(), cert.pool)
                else:
                    ok = head1_correct(model, enc)
                cell = la * (width + 1) + lb
                length_total += torch.bincount(cell, minlength=cells)
                length_wrong += torch.bincount(cell[~ok], minlength=cells)
                chain = carry_chain(da, db, c.base)
                carry_total += torch.bincount(chain, minlength=len(carry_total))
                carry_wrong += torch.bincount(chain[~ok], minlength=len(carry_total))
                cert.n += len(a)
                wrong = (~ok).nonzero().flatten().cpu()
                bad = list(zip(*(x[wrong].tolist() if isinstance(x, torch.Tensor) else [x[i] for i in wrong.tolist()]
                                 for x in (a, b))))
                if bad:
                    lines = _describe(model, tok, bad, decode, decode_answers=cert.wrong < DECODED_WRONG)
                    cert.examples += lines[:max(0, 10 - len(cert.examples))]
                    if f is not None:
                        f.writelines(line + "\n" for line in lines)
                cert.wrong += len(bad)
                bar.update(len(a))
        finally:
            bar.close()
            model.train(was_training)
    cert.seconds = time.perf_counter() - t0
    w = width + 1
    length_wrong, length_total = length_wrong.view(w, w).tolist(), length_total.view(w, w).tolist()
    cert.by_length = {(i, j): [length_wrong[i][j], length_total[i][j]]
                      for i in range(w) for j in range(w) if length_total[i][j]}
    carry_wrong, carry_total = carry_wrong.tolist(), carry_total.tolist()
    cert.by_carry_chain = {k: [carry_wrong[k], carry_total[k]] for k in range(len(carry_total)) if carry_total[k]}
    if search_rounds and world == 1:
        search_errors(model, tok, cert, search_rounds)
    return cert


def thinnest(pairs: torch.Tensor, margins: torch.Tensor, pool: tuple | None, k: int = POPULATION) -> tuple:
    """The `k` problems with the thinnest margins among `pairs` and those already in `pool` ((pairs, margins))."""
    if pool is not None:
        pairs, margins = torch.cat([pool[0], pairs]), torch.cat([pool[1], margins])
    keep = torch.argsort(margins, stable=True)[:k]
    return pairs[keep], margins[keep]


def search_errors(model, tok, cert: Certificate, rounds: int) -> None:
    """Search (search.py) from the thinnest problems the certification checked for wrong ones it did not
    check, and record what it found in `cert.search`. A sample of 10^6 cannot see an error rate of 10^-6; a
    search that finds wrong problems shows the model is not exact, whatever the sample says."""

    if cert.pool is None:
        return
    c = model.config
    lo, hi = cert.min_operand, cert.max_operand
    encoder = None if ProblemEncoder.merges_digits(tok) else ProblemEncoder(tok, c.base, c.reverse, hi)
    verdicts_of = functools.partial(pair_verdicts, model, tok, encoder, batch_size=4096)
    t0 = time.perf_counter()
    # The generator picks which neighbours to try; it is not a sample any rate is measured on.
    g = torch.Generator().manual_seed(cert.seed or 0)
    found, margins = search(lambda p: verdicts_of(p)[1], *cert.pool, rounds, lo, hi, c.base, g)
    suspects = found[margins <= 0]
    wrong = suspects[~verdicts_of(suspects)[0]].tolist()  # by argmax, as the sample: a tie may be right
    lines = _describe(model, tok, wrong[:10], decode, decode_answers=True) if wrong else []
    cert.search = {"rounds": rounds, "from_thinnest": min(len(cert.pool[0]), POPULATION), "evaluated": len(found),
                   "wrong": len(wrong), "thinnest_margin": float(margins.min()) if len(found) else None,
                   "seconds": round(time.perf_counter() - t0, 1), "examples": lines}


def _describe(model, tok, pairs, decode, decode_answers: bool) -> list[str]:
    if not decode_answers:
        return [f"{a}+{b} (expected {a + b})" for a, b in pairs]
    answers = decode(model, tok, pairs, "single", batch_size=1024)
    return [f"{x.a}+{x.b}={x.value if x.value is not None else '?'} (expected {x.a + x.b})" for x in answers]


def certify_distributed(model, tok, n: int | None, seed: int, out_dir: str | Path, accelerator=None,
                        batch_size: int = 4096, search_rounds: int = 0) -> Certificate:
    """certify() split across the processes of an Accelerate run (or just run, in one process): each checks
    its share of the chunks, the main process merges the shards and writes certificate.json and the wrong file."""
    out_dir = Path(out_dir)
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    if world == 1:
        cert = certify(model, tok, n, seed, batch_size, out_dir / WRONG_FILE, search_rounds=search_rounds)
        save(cert, out_dir)
        return cert
    from accelerate.utils import gather_object
    part = out_dir / f".{WRONG_FILE}.part{rank}"
    cert = certify(model, tok, n, seed, batch_size, part, rank=rank, world=world, progress=rank == 0,
                   search_rounds=search_rounds)
    parts = gather_object([cert])
    if accelerator.is_main_process:
        cert = merge(parts)
        if search_rounds:
            search_errors(model, tok, cert, search_rounds)
        with atomic_open(out_dir / WRONG_FILE) as f:
            for r in range(world):
                p = out_dir / f".{WRONG_FILE}.part{r}"
                f.write(p.read_text())
                p.unlink()
        save(cert, out_dir)
    accelerator.wait_for_everyone()
    return cert
