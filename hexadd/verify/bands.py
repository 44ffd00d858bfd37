"""The certificate of a model that runs at any length: exact match by band of operand lengths, far past training.

A block-window model's head 1 at an answer digit sees keys within `window` block positions of its own, and
each layer widens that by `window` again: after `n_layer` layers an answer digit depends only on the tokens
within R = n_layer x window block positions of it (and, near the start of the numbers, on their `+`). Every
context an answer digit meets deep inside a long number is met inside any longer one, so a band of lengths
samples the contexts of all longer lengths except those near the numbers' ends, which every band has too.
`locality` measures that claim on the model itself: digits changed further than R from an answer digit leave
its logits bit for bit unchanged.

Each band draws fresh problems as digit arrays (nothing passes through int64), in four families:
- uniform: each operand's length uniform in the band, its digits uniform (a leading digit is not 0);
- carry_runs: operands of one length, a run of columns summing to base - 1 (the carry crosses all of it)
  after a column that carries;
- all_f_plus_1: F...F + 1, 1 + F...F, F...F + F...F and F...F + a shorter number, lengths in the band;
- mixed_lengths: one operand's length in the band, the other's uniform from 1 to it, either way round.
Teacher forced, as every certificate here: head 1's argmax right at every answer token is what greedy
decoding returns. Per band and family: problems, wrong, and the one-sided 95% Clopper-Pearson bound.
"""
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..common import rng
from ..common.io import write_json
from .certificate import upper_bound_95
from .verdicts import head1_correct
from ..data.encoding import ProblemEncoder, digits_to_int

BANDS = ((1, 8), (9, 16), (17, 32), (33, 64), (65, 128), (129, 256), (257, 512), (513, 1024), (4096, 4096))
FAMILIES = ("uniform", "carry_runs", "all_f_plus_1", "mixed_lengths")
LONG = 1024            # bands beyond this many digits get a tenth of the problems: each costs 4x the 513..1024 band's


def _digits(lengths: torch.Tensor, width: int, base: int, g: torch.Generator) -> torch.Tensor:
    """(n, width) uniform digits of numbers with exactly these lengths (0 past a number's end, leading digit not 0)."""
    n = len(lengths)
    d = torch.randint(0, base, (n, width), generator=g)
    lead = torch.randint(1, base, (n,), generator=g)
    rows = torch.arange(n)
    d[rows, lengths - 1] = torch.where(lengths > 1, lead, d[rows, lengths - 1])
    return d * (torch.arange(width) < lengths[:, None])


def _lengths(d: torch.Tensor) -> torch.Tensor:
    """Each row's length: its last non-zero digit's place + 1 (0 is a one-digit number)."""
    cols = torch.arange(1, d.shape[1] + 1)
    return ((d != 0) * cols).max(dim=1).values.clamp(min=1)


def family_operands(family: str, lo: int, hi: int, n: int, base: int, g: torch.Generator):
    """(da, la, db, lb): n problems of `family` with operand lengths in lo..hi, digit arrays least significant first."""
    top = base - 1

    def between(a, b, size=n):  # uniform integers in a..b, per row
        return a + (torch.rand(size, generator=g) * (b - a + 1)).long().clamp(max=b - a)

    if family == "uniform":
        la, lb = between(lo, hi), between(lo, hi)
        return _digits(la, hi, base, g), la, _digits(lb, hi, base, g), lb
    if family == "mixed_lengths":
        long_, short = between(lo, hi), None
        short = (1 + (torch.rand(n, generator=g) * long_).long()).clamp(max=long_)
        swap = torch.rand(n, generator=g) < 0.5
        la, lb = torch.where(swap, short, long_), torch.where(swap, long_, short)
        return _digits(la, hi, base, g), la, _digits(lb, hi, base, g), lb
    if family == "carry_runs":
        length = between(max(lo, 2), max(hi, 2))
        width = max(hi, 2)
        da, db = _digits(length, width, base, g), _digits(length, width, base, g)
        run = between(1, 1, n) + (torch.rand(n, generator=g) * (length - 1)).long()            # 1 .. length-1 columns
        start = 1 + (torch.rand(n, generator=g) * (length - run)).long()                       # after column start-1
        cols = torch.arange(width)
        inside = (cols >= start[:, None]) & (cols < (start + run)[:, None])
        db = torch.where(inside, top - da, db)
        rows = torch.arange(n)
        carry_a = between(1, top)                                                              # column start-1 carries
        da[rows, start - 1] = carry_a
        db[rows, start - 1] = base - carry_a + (torch.rand(n, generator=g) * carry_a).long().clamp(max=carry_a - 1)
        return da, _lengths(da), db, _lengths(db)
    if family == "all_f_plus_1":
        length = between(lo, hi)
        cols = torch.arange(hi)
        ones = (cols < length[:, None]).long() * top                                           # F...F
        kind = torch.arange(n) % 4
        one = torch.zeros(n, hi, dtype=torch.long)
        one[:, 0] = 1
        other = _digits(between(1, 1, n) + (torch.rand(n, generator=g) * length).long().clamp(max=length - 1), hi, base, g)
        da = torch.where((kind == 1)[:, None], one, ones)
        db = torch.where((kind == 0)[:, None], one, torch.where((kind == 2)[:, None], ones, other))
        db = torch.where((kind == 1)[:, None], ones, db)
        return da, _lengths(da), db, _lengths(db)
    raise ValueError(f"unknown family {family!r}")


def _show(d: torch.Tensor, length: int, base: int) -> str:
    return format(digits_to_int(d[:length].tolist(), base), "X" if base == 16 else "d")


@torch.inference_mode()
def certify_bands(model, tok, per_family: int, bands=None, families=FAMILIES, seed: int = 0, batch_size: int = 4096,
                  progress: bool = True, log=print) -> list[dict]:
    """`per_family` problems a band (default BANDS; a tenth beyond LONG digits) and family; a record per (band,
    family) and one pooled per band."""
    bands = bands or BANDS
    c = model.config
    encoder = ProblemEncoder(tok, c.base, c.reverse, c.max_operand)
    was_training = model.training
    model.eval()
    records = []
    bar = tqdm(total=sum(per_family if hi <= LONG else max(1, per_family // 10) for _, hi in bands) * len(families), desc="bands", unit="problem", unit_scale=True,
               disable=not progress or None, dynamic_ncols=True)
    try:
        for b, (lo, hi) in enumerate(bands):
            pooled = {"band": [lo, hi], "family": "all", "n": 0, "wrong": 0, "seconds": 0.0}
            n = per_family if hi <= LONG else max(1, per_family // 10)
            for f, family in enumerate(families):
                g = rng.generator(seed, rng.BAND, b * 100 + f)
                t0 = time.perf_counter()
                wrong, examples = 0, []
                # Fewer rows a batch for long problems: activations grow with rows x tokens.
                step = max(1, min(batch_size, (1 << 20) // (3 * hi + 8)))
                for s in range(0, n, step):
                    m = min(step, n - s)
                    da, la, db, lb = family_operands(family, lo, hi, m, c.base, g)
                    device = next(model.parameters()).device
                    enc = encoder.encode_digits(*(x.to(device) for x in (da, la, db, lb)))
                    ok = head1_correct(model, enc).cpu()
                    wrong += int((~ok).sum())
                    for r in (~ok).nonzero().flatten().tolist()[:max(0, 3 - len(examples))]:
                        examples.append(f"{_show(da[r], int(la[r]), c.base)}+{_show(db[r], int(lb[r]), c.base)}")
                    bar.update(m)
                rec = {"band": [lo, hi], "family": family, "n": n, "wrong": wrong, "upper_95": upper_bound_95(wrong, n),
                       "seconds": round(time.perf_counter() - t0, 1), "examples": examples}
                records.append(rec)
                for key in ("n", "wrong", "seconds"):
                    pooled[key] += rec[key]
                if wrong:
                    (bar.write if not bar.disable else log)(f"band {lo}..{hi} {family}: {wrong:,} wrong of {n:,}, "
                                                            f"e.g. {examples[0][:80]}")
            pooled["upper_95"] = upper_bound_95(pooled["wrong"], pooled["n"])
            pooled["seconds"] = round(pooled["seconds"], 1)
            records.append(pooled)
            (bar.write if not bar.disable else log)(
                f"band {lo}..{hi} digits: {pooled['n'] - pooled['wrong']:,}/{pooled['n']:,} right, "
                f"95% upper bound on the error rate {pooled['upper_95']:.2g}")
    finally:
        bar.close()
        model.train(was_training)
    return records


def receptive_radius(model) -> int:
    """Block positions around an answer digit that head 1 can depend on: the window, widened by every layer."""
    return model.config.n_layer * model.config.window


@torch.inference_mode()
def locality(model, tok, n: int = 64, length: int = 256, seed: int = 0) -> dict:
    """Measure that an answer digit of a block-window model depends only on its neighbourhood. For `n` problems of
    `length`-digit operands: head 1 predicting answer columns mid-1..mid+1 reads operand columns mid-2-R..mid+R at
    most (R = receptive_radius). Redraw every operand digit outside mid-R-3..mid+R+1 (keeping the leading digits,
    so the lengths stay, and making column mid-R-3 0 + 0 in both, so that no carry crosses it and the answer
    digits near mid stay those of the original) and compare head 1's logits there: the largest absolute
    difference (0.0: unchanged bit for bit) and the problems whose answer there changed."""
    c = model.config
    R = receptive_radius(model)
    g = rng.generator(seed, rng.BAND, -1)
    length = max(length, 4 * R + 12)
    mid = length // 2
    lens = torch.full((n,), length)
    da, db = _digits(lens, length, c.base, g), _digits(lens, length, c.base, g)
    cols = torch.arange(length)
    wall = mid - R - 3
    da[:, wall], db[:, wall] = 0, 0
    far = ((cols < wall) | (cols > mid + R + 1)) & (cols < length - 1)
    da2 = torch.where(far, _digits(lens, length, c.base, g), da)
    db2 = torch.where(far, _digits(lens, length, c.base, g), db)
    encoder = ProblemEncoder(tok, c.base, c.reverse, c.max_operand)
    device = next(model.parameters()).device
    model.eval()

    def logits(a, b):
        enc = encoder.encode_digits(a.to(device), lens.to(device), b.to(device), lens.to(device))
        ids, mask = enc.input_ids[:, :-1], enc.attention_mask[:, :-1]
        first = 2 * length + 3                            # `+` A `+` B `+`: answer column 0's token
        queries = first - 1 + torch.arange(mid - 1, mid + 2, device=device)  # the tokens predicting columns mid-1..mid+1
        return model(ids, attention_mask=mask, heads=1).logits[:, queries]

    before, after = logits(da, db), logits(da2, db2)
    return {"problems": n, "operand_digits": length, "radius": R, "answer_digits_checked": 3,
            "operand_digits_redrawn": int(far.sum()),
            "max_abs_logit_difference": float((before - after).abs().max()),
            "answers_changed": int((before.argmax(-1) != after.argmax(-1)).any(dim=1).sum())}


def summary(records: list[dict]) -> list[dict]:
    """The pooled rows: one per band."""
    return [r for r in records if r["family"] == "all"]


BANDS_FILE = "bands.json"


def save_bands(result: dict, out_dir) -> Path:
    """bands.json in `out_dir`: the records and the locality measurement."""
    path = Path(out_dir) / BANDS_FILE
    write_json(path, result)
    return path


def report(result: dict) -> str:
    lines = ["any-length certificate (teacher forced = greedy decoding; fresh problems, families pooled per band):"]
    for r in summary(result["bands"]):
        lo, hi = r["band"]
        name = f"{lo}..{hi}" if lo != hi else f"{lo}"
        fams = ", ".join(f"{x['family']} {x['wrong']}/{x['n']}" for x in result["bands"]
                         if x["band"] == r["band"] and x["family"] != "all" and x["wrong"])
        lines.append(f"  {name:>10} digits: {r['n'] - r['wrong']:,}/{r['n']:,} right, 95% upper bound "
                     f"{r['upper_95']:.2g} ({r['seconds']:.0f} s)" + (f"; wrong: {fams}" if fams else ""))
    if loc := result.get("locality"):
        lines.append(f"  locality: digits further than {loc['radius']} + 1 block positions redrawn in {loc['problems']} "
                     f"problems of {loc['operand_digits']} digits: head 1's logits near the middle moved by at most "
                     f"{loc['max_abs_logit_difference']:.3g}, answers changed: {loc['answers_changed']}")
    return "\n".join(lines)
