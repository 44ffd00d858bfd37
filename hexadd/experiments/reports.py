"""The ablation table, rebuilt from the results JSON: one row per row file, its seeds summarized.

A run ends one of four ways: its own stopping rule stopped it (the time counts), its schedule ended
(the time counts, with where it stood), the runner's time budget stopped it (where it stood: step
and held-out score of the model it saved), or it failed. Error rates are pooled over seeds: every
seed's model is certified on the same seeded uniform sample of the whole operand range.
"""
import statistics

from ..common.stats import upper_bound_95

STOPPED, SCHEDULE, BUDGET, FAILED = "stopping rule", "schedule end", "budget", "failed"


def current_runs(results: dict, name: str) -> list[dict]:
    """The runs of row `name` made with its present definition, by seed."""
    fp = results["rows"][name]["fingerprint"]
    return sorted((r for r in results["runs"] if r["row"] == name and r["fingerprint"] == fp), key=lambda r: r["seed"])


def summarize(results: dict) -> list[dict]:
    out = []
    for name, row in results["rows"].items():
        runs = current_runs(results, name)
        if not runs:
            continue
        done = [r for r in runs if r["outcome"] != FAILED]
        n = sum(r["certificate"]["n"] for r in done)
        wrong = sum(r["certificate"]["wrong"] for r in done)
        stop_times = [r["time_s"] for r in runs if r["outcome"] == STOPPED]

        def mean(key):
            return statistics.fmean(r[key] for r in done) if done else None

        out.append({
            "row": name, "label": row["label"], "claim": row["claim"], "seeds": [r["seed"] for r in runs],
            "outcomes": [r["outcome"] for r in runs], "runs": runs,
            "median_stop_s": statistics.median(stop_times) if len(stop_times) == len(runs) else None,
            "n": n, "wrong": wrong, "error_rate": wrong / n if n else None, "upper_95": upper_bound_95(wrong, n) if n else None,
            "wrong_per_seed": [r["certificate"]["wrong"] for r in done], "n_per_seed": done[0]["certificate"]["n"] if done else 0,
            "tokens_per_problem": mean("tokens_per_problem"), "passes_per_answer": mean("passes_per_answer"),
            "decode_mode": done[0]["decode_mode"] if done else None,
            "samples_per_s": statistics.median(r["samples_per_s"] for r in done) if done else None,
        })
    return out


def _slash(values, fmt) -> str:
    return " / ".join(fmt(v) for v in values)


def stop_cell(s: dict) -> str:
    """Median stop time when every seed stopped by its rule; otherwise each kind of ending, with where it stood."""
    if s["median_stop_s"] is not None:
        times = _slash((r["time_s"] for r in s["runs"]), lambda t: f"{t:.0f}")
        return f"**{s['median_stop_s']:.0f} s** (median; {times} s)"
    parts = []
    for kind in (STOPPED, SCHEDULE, BUDGET, FAILED):
        runs = [r for r in s["runs"] if r["outcome"] == kind]
        if not runs:
            continue
        seeds = "" if len(runs) == len(s["runs"]) else f" (seed{'s' if len(runs) > 1 else ''} {', '.join(str(r['seed']) for r in runs)})"
        steps = _slash((r["steps"] for r in runs), lambda v: f"{v:,}")
        held = _slash((r.get("held_out_accuracy") for r in runs), lambda v: "–" if v is None else f"{100 * v:.2f}")
        if kind == STOPPED:
            parts.append(f"stopped by its rule at {_slash((r['time_s'] for r in runs), lambda t: f'{t:.0f}')} s{seeds}")
        elif kind == SCHEDULE:
            parts.append(f"schedule ended at step {steps} ({_slash((r['time_s'] for r in runs), lambda t: f'{t:.0f}')} s), "
                         f"held-out {held}%{seeds}")
        elif kind == BUDGET:
            parts.append(f"budget ({runs[0]['budget_s']:.0f} s) hit at step {steps}, held-out {held}%{seeds}")
        else:
            parts.append(f"failed: {runs[0]['error']}{seeds}")
    return "; ".join(parts)


def error_cell(s: dict) -> str:
    if not s["n"]:
        return "–"
    per_seed = _slash(s["wrong_per_seed"], lambda w: f"{w:,}")
    return f"{s['error_rate']:.2g} (≤ {s['upper_95']:.2g}); wrong {per_seed} of {s['n_per_seed']:,}"


def markdown(results: dict) -> str:
    """docs/ablations.md: what was run, the table, and the machine."""
    settings, m = results["settings"], results.get("machine", {})
    rows = summarize(results)
    overrides = settings.get("set") or []
    runs = [r for s in rows for r in s["runs"]]

    def values(get, fmt):
        return " or ".join(fmt(v) for v in sorted({get(r) for r in runs if r["outcome"] != FAILED})) or "–"

    lines = [
        "# Ablations",
        "",
        f"Each row is the default config (`data_config.yaml`, `train_config.yaml`) changed as its file in "
        f"`{settings['row_folder']}/` says. Seeds {values(lambda r: r['seed'], str)} set the model's initialisation "
        f"and batch order (data, tokenizer and held-out set are shared). A run ends when its own stopping rule stops "
        f"it, when its schedule ends, or {values(lambda r: r['budget_s'], lambda v: f'{v:.0f} s')} after launch "
        f"(the budget; \"held-out\" is then its last evaluation). The model a run saved is certified on "
        f"{values(lambda r: r['certificate']['n'], lambda v: f'{v:,}')} problems sampled uniformly from its whole "
        f"operand range (seed 0: the same problems for every row); error rates pool the seeds. Tokens per problem "
        f"and forward passes per answer are measured on {settings['decode_sample']:,} sampled problems.",
        "",
    ]
    if overrides:
        lines += [f"Every row also had: {', '.join(f'`{o}`' for o in overrides)}.", ""]
    lines += [
        "| row | claim | until its rule stopped it, or where it stood | error rate (95% upper bound); wrong per seed "
        "| tokens/problem | training samples/s | forward passes/answer |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        passes = "–" if s["passes_per_answer"] is None else f"{s['passes_per_answer']:.2f} ({s['decode_mode']})"
        fmt = (lambda v, f: "–" if v is None else format(v, f))
        lines.append(f"| `{s['row']}`: {s['label']} | {s['claim']} | {stop_cell(s)} | {error_cell(s)} | "
                     f"{fmt(s['tokens_per_problem'], '.1f')} | {fmt(s['samples_per_s'], ',.0f')} | {passes} |")
    busiest = max((r.get("load_1min", 0) for r in runs), default=0)
    if busiest > 1.5 * m.get("cores", busiest):
        lines += ["", f"**Some runs shared the CPU with other work** (load average up to {busiest:.1f} on "
                      f"{m.get('cores')} cores at the end of training, `load_1min` in the results): their times, "
                      f"steps and samples/s understate this machine."]
    lines += ["", f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, PyTorch {m.get('torch', '?')}; "
                  f"{m.get('date', '?')}. Rebuilt from `{settings['results']}` by "
                  "`python3 bench/ablations.py --report-only`.", ""]
    return "\n".join(lines)
