"""The certificate: what a certification found (problems checked, wrong, the error rate and its one-sided
95% upper bound, by operand length and by longest carry chain), its report, and where it is stored."""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..common.io import write_json
from ..common.stats import upper_bound_95

CERTIFICATE_FILE, WRONG_FILE = "certificate.json", "certificate_wrong.txt"


@dataclass
class Certificate:
    min_operand: int
    max_operand: int
    base: int
    exhaustive: bool
    seed: int | None
    n: int = 0
    wrong: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    method: str = "teacher-forced head-1 argmax at every answer token (= greedy decoding)"
    by_length: dict = field(default_factory=dict)       # (digits a, digits b) -> [wrong, total]
    by_carry_chain: dict = field(default_factory=dict)  # longest carry chain -> [wrong, total]
    examples: list = field(default_factory=list)        # a few wrong problems, "a+b=answer (expected c)"
    search: dict | None = None                          # what a search near the thinnest problems found
    pool: tuple | None = field(default=None, repr=False)  # (pairs, margins) of the thinnest checked: its start

    @property
    def error_rate(self) -> float:
        return self.wrong / max(self.n, 1)

    @property
    def upper_95(self) -> float:
        return upper_bound_95(self.wrong, self.n)

    @property
    def problems_per_s(self) -> float:
        return self.n / max(self.seconds, 1e-9)

    def headline(self) -> str:
        how = "every problem" if self.exhaustive else f"a uniform sample (seed {self.seed})"
        return (f"{self.n - self.wrong:,}/{self.n:,} right ({self.wrong:,} wrong) on {how} of "
                f"{self.min_operand}..{self.max_operand} + {self.min_operand}..{self.max_operand}: error rate "
                f"{self.error_rate:.3g}, 95% upper bound {self.upper_95:.3g}")

    def to_json(self) -> dict:
        d = asdict(self)
        del d["pool"]
        if self.search is None:
            del d["search"]
        d["by_length"] = [{"digits_a": a, "digits_b": b, "wrong": w, "total": t}
                          for (a, b), (w, t) in sorted(self.by_length.items())]
        d["by_carry_chain"] = [{"longest_carry_chain": c, "wrong": w, "total": t}
                               for c, (w, t) in sorted(self.by_carry_chain.items())]
        d.update(error_rate=self.error_rate, upper_95=self.upper_95, problems_per_s=self.problems_per_s)
        return d


def merge(parts: list[Certificate]) -> Certificate:
    """One certificate from the shards of a distributed run."""
    out = parts[0]
    for p in parts[1:]:
        out.n += p.n
        out.wrong += p.wrong
        out.seconds = max(out.seconds, p.seconds)
        out.examples = (out.examples + p.examples)[:10]
        if p.pool is not None:  # the search starts from the thinnest of them all
            out.pool = p.pool if out.pool is None else tuple(torch.cat([x, y]) for x, y in zip(out.pool, p.pool))
        for table, other in ((out.by_length, p.by_length), (out.by_carry_chain, p.by_carry_chain)):
            for k, (w, t) in other.items():
                cell = table.setdefault(k, [0, 0])
                cell[0] += w
                cell[1] += t
    return out


def report(cert: Certificate) -> str:
    lines = [f"certificate: {cert.headline()}",
             f"  {cert.problems_per_s:,.0f} problems/s on {cert.device} ({cert.seconds:.1f} s)"]
    if cert.wrong:
        worst = sorted(cert.by_length.items(), key=lambda kv: -kv[1][0])[:4]
        lines.append("  wrong by digit lengths: " + ", ".join(f"{a}+{b}: {w:,}/{t:,}" for (a, b), (w, t) in worst if w))
        lines.append("  wrong by longest carry chain: " + ", ".join(
            f"{k}: {w:,}/{t:,}" for k, (w, t) in sorted(cert.by_carry_chain.items()) if w))
        lines.append("  e.g. " + "; ".join(cert.examples[:5]))
    if cert.search is not None:
        s = cert.search
        found = (f"{s['wrong']:,} wrong, so the model is not exact: e.g. " + "; ".join(s["examples"][:3])
                 if s["wrong"] else f"none wrong (thinnest lead {s['thinnest_margin']:.2f} logits)")
        lines.append(f"  error search ({s['rounds']} rounds from the {s['from_thinnest']} thinnest checked, "
                     f"{s['evaluated']:,} problems, {s['seconds']} s): {found}")
    return "\n".join(lines)


def save(cert: Certificate, out_dir: str | Path, extra: dict | None = None) -> Path:
    """certificate.json in `out_dir` (with `extra` keys), and the certificate inside eval_results.json when that exists."""
    out_dir = Path(out_dir)
    write_json(out_dir / CERTIFICATE_FILE, {**cert.to_json(), **(extra or {})})
    ev = out_dir / "eval_results.json"
    if ev.is_file():
        try:
            data = json.loads(ev.read_text())
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            data["certificate"] = summary(cert)
            write_json(ev, data)
    return out_dir / CERTIFICATE_FILE


def summary(cert: Certificate) -> dict:
    """The certificate's headline numbers, as stored beside evaluations and in the model card."""
    return summary_of(cert.to_json())


def summary_of(d: dict) -> dict:
    """summary() of a certificate read back from its JSON."""
    return {"n": d["n"], "wrong": d["wrong"], "error_rate": d["error_rate"], "upper_95": d["upper_95"],
            "exhaustive": d["exhaustive"], "seed": d["seed"], "min_operand": d["min_operand"],
            "max_operand": d["max_operand"], "device": d["device"], "seconds": round(d["seconds"], 1),
            **({"search_wrong": d["search"]["wrong"], "search_evaluated": d["search"]["evaluated"]}
               if d.get("search") is not None else {})}
