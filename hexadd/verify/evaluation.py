"""Exact-match evaluation by actual decoding: overall, by operand digit lengths, and passes per answer."""
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..data.generate import read_lines, read_problems
from ..inference.decoding import decode
from ..common.io import write_json
from ..common.errors import DataError
from ..data.numbers import SEP, num_digits, parse_decimal_problem
from ..data.dataset import load
from ..plots import accuracy_by_length


@dataclass
class EvalResult:
    mode: str
    base: int
    total: int = 0
    correct: int = 0
    passes: int = 0
    malformed: int = 0
    by_length: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # (len a, len b) -> [correct, total]
    wrong: list = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    @property
    def passes_per_answer(self) -> float:
        return self.passes / max(self.total, 1)


def read_any(path: str | Path, base: int, reverse: bool) -> list[tuple[int, int, int]]:
    """(a, b, a+b) from a data folder (its test split), a file of `+A+B+C+` lines or of decimal `a+b` lines."""
    if Path(path).is_dir():
        test = load(path)["test"].select_columns(["a", "b"])
        return [(int(a), int(b), int(a) + int(b)) for a, b in zip(test["a"], test["b"])]
    numbered = read_lines(path)
    if numbered[0][1].startswith(SEP):
        return read_problems(path, base, reverse)[1]
    problems = []
    for i, line in numbered:
        try:
            a, b = parse_decimal_problem(line)
        except ValueError as e:
            raise DataError(f"{path} line {i}: {e}") from None
        problems.append((a, b, a + b))
    return problems


def evaluate_file(model, tok, path: str | Path, mode: str, batch_size: int = 512) -> EvalResult:
    cfg = model.config
    problems = read_any(path, cfg.base, cfg.reverse)
    result = EvalResult(mode=mode, base=cfg.base)
    bar = tqdm(total=len(problems), desc=f"eval ({mode})", unit="problem", disable=None, leave=False)
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        for (a, b, c), ans in zip(chunk, decode(model, tok, [(a, b) for a, b, _ in chunk], mode, batch_size)):
            ok = ans.value == c
            cell = result.by_length[(num_digits(a, cfg.base), num_digits(b, cfg.base))]
            cell[0] += ok
            cell[1] += 1
            result.total += 1
            result.correct += ok
            result.passes += ans.passes
            result.malformed += ans.value is None
            if not ok and len(result.wrong) < 10:
                result.wrong.append(f"{a}+{b}={ans.value if ans.value is not None else '?'} (expected {c})")
        bar.update(len(chunk))
    bar.close()
    return result


def to_json(r: EvalResult) -> dict:
    return {"mode": r.mode, "base": r.base, "accuracy": r.accuracy, "correct": r.correct, "total": r.total,
            "passes_per_answer": r.passes_per_answer, "malformed": r.malformed,
            "by_length": [{"digits_a": a, "digits_b": b, "correct": c, "total": n}
                          for (a, b), (c, n) in sorted(r.by_length.items())]}


def write_outputs(r: EvalResult, out_dir: Path, source: Path) -> None:
    """eval_results.json and accuracy_by_length.png in `out_dir`, for the problems read from `source`."""
    out_dir, source = Path(out_dir), Path(source)
    name = f"{source.name} (test split)" if source.is_dir() else source.name
    write_json(out_dir / "eval_results.json", {"file": name, **to_json(r)})
    accuracy_by_length(r.by_length, r.base, f"{name}: exact match {r.accuracy:.2%} ({r.correct}/{r.total}), "
                       f"decode={r.mode}", out_dir / "accuracy_by_length.png")


def report(r: EvalResult) -> str:
    lens_a = sorted({a for a, _ in r.by_length})
    lens_b = sorted({b for _, b in r.by_length})
    lines = [f"exact match: {r.accuracy:.2%} ({r.correct}/{r.total}), decode={r.mode}, "
             f"{r.passes_per_answer:.2f} forward passes per answer, {r.malformed} malformed answers",
             f"by digit length (base {r.base}), a down, b across:",
             "      " + "".join(f"{b:>9}" for b in lens_b)]
    for a in lens_a:
        cells = [r.by_length.get((a, b)) for b in lens_b]
        lines.append(f"{a:>6}" + "".join(f"{c[0] / c[1]:>9.2%}" if c else f"{'-':>9}" for c in cells))
    if r.wrong:
        lines.append("first wrong answers: " + "; ".join(r.wrong))
    return "\n".join(lines)
