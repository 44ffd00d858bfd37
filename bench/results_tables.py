#!/usr/bin/env python3
"""docs/results.md and the README's results table, built from bench/results/ (make results).

Every table row comes from one results file and names it with the commit it was measured at. A file of a known
kind (recognised by its name) lands in its topic's table on the next run, no code change needed; a file of no
known kind is listed under "Other files". Runs whose config differs from today's train_config.yaml say how.

    python3 bench/results_tables.py            # rewrite docs/results.md and the README block
    python3 bench/results_tables.py --check    # exit 1 if either differs from what this makes

Needs only the standard library and PyYAML (no torch): the test regenerates in memory.
"""
import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# Keys that say where or how fast a run ran, not what it trained: left out of the recipe comparison.
NOT_RECIPE = {"training.seed", "checks.certify", "runtime.device", "runtime.threads", "runtime.log_with",
              "runtime.checkpoint_interval", "checks.certify_search",
              # the same keys in results recorded before the checks and runtime sections
              "training.certify", "training.device", "training.threads", "training.log_with",
              "training.checkpoint_interval", "training.certify_search"}


# ---------------------------------------------------------------- formatting

def n(x, digits=0) -> str:
    """1234567 -> 1,234,567; floats with `digits` decimals."""
    if x is None:
        return "–"
    if isinstance(x, float) and digits:
        return f"{x:,.{digits}f}"
    return f"{round(x):,}"


def power(x) -> str:
    """N as 10^k where it is one, else with thousands separators."""
    for k in range(3, 10):
        if x == 10 ** k:
            return f"10^{k}"
    return n(x)


def bound(p) -> str:
    return "–" if p is None else f"{p:.1e}"


def pct(a, b) -> str:
    return f"{100 * a / b:.2f}%" if b else "–"


def minutes(s) -> str:
    return f"{s / 60:.1f} min" if s is not None else "–"


def seconds(s) -> str:
    return f"{s:,.0f} s" if s is not None else "–"


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list]) -> list[str]:
    if not rows:
        return ["(no files of this kind)"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def machine(m) -> str:
    if isinstance(m, dict):
        gpu = m.get("gpu")
        cpu = m.get("cpu", "?").replace("(R)", "").replace(" Processor", "").replace(" CPU", "")
        text = f"{m.get('cores', '?')} cores, {cpu}"
        return f"1 {gpu.replace('NVIDIA ', '')} ({text})" if gpu else text
    return str(m)


def cite(name: str, d: dict) -> str:
    commit = str(d.get("commit", "?")).split()[0][:7]
    return f"[{name}](../bench/results/{name}) @ `{commit}`"


def cite_readme(name: str, d: dict) -> str:
    commit = str(d.get("commit", "?")).split()[0][:7]
    return f"[{name}](bench/results/{name}) @ `{commit}`"


# ---------------------------------------------------------------- today's recipe

def flat(d: dict, at: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{at}{k}."))
        else:
            out[f"{at}{k}"] = v
    return out


RECIPE = ("model", "training", "checks")
# Keys as results recorded before the checks section and the batch mixture named them.
RENAMED = {"training.carry_share": "checks.families.carry", "training.sum_share": "checks.families.sums",
           "training.uniform_rows": "training.mixture.uniform", "training.replay": "training.mixture.replay",
           **{f"training.{k}": f"checks.{k}" for k in ("eval_interval", "fresh_eval", "early_stop", "stop_clean_evals",
                                                        "stop_gate")}}


def recipe(cfg: dict) -> dict:
    return {RENAMED.get(k, k): v for k, v in flat({s: cfg.get(s, {}) for s in RECIPE}).items()}


def today(root: Path) -> dict:
    """The recipe (model.*, training.*, checks.*) of today's train_config.yaml (the file equals the code's defaults)."""
    cfg = yaml.safe_load((root / "train_config.yaml").read_text())
    return {k: v for k, v in recipe(cfg).items() if k not in NOT_RECIPE}


def recipe_diff(train_cfg: dict | None, now: dict, limit: int = 4) -> str:
    """How a run's resolved training config differs from today's default recipe."""
    if not isinstance(train_cfg, dict) or "training" not in train_cfg:
        return "not recorded"
    have = recipe(train_cfg)
    diffs = [f"{k} {have[k]} (today {v})" for k, v in now.items() if k in have and have[k] != v
             and not (isinstance(v, (int, float)) and isinstance(have[k], (int, float)) and float(have[k]) == float(v))]
    # Keys the run's code did not have yet; those that are on today (true, non-zero) first: they changed the recipe.
    absent = sorted((k for k in now if k not in have),
                    key=lambda k: not (now[k] is True or (isinstance(now[k], (int, float)) and not isinstance(now[k], bool) and now[k] not in (0, 1))))
    if not diffs and not absent:
        return "today's"
    text = "; ".join(diffs[:limit]) + (f"; {len(diffs) - limit} more" if len(diffs) > limit else "")
    if absent:
        shown = ", ".join(f"{k} {now[k]}" for k in absent[:limit])
        text += ("; " if text else "") + (f"{len(absent)} key{'s' if len(absent) > 1 else ''} added since, today "
                                          f"{shown}{', ...' if len(absent) > limit else ''}")
    return text


# Changes of how a figure is measured, by date: files dated before them measured it the older way.
SEARCH_ARGMAX = ("2026-11-29 04:51", "d9cd2d9")  # a search find confirmed by argmax, no longer by a margin <= 0
MARGIN_SHARED = ("2026-11-29 02:03", "7c64c07")  # sample_families' margins through the certificate's own code


def rule(d: dict, change: tuple[str, str], old: str, new: str) -> str:
    return old + f" (before `{change[1]}`)" if str(d.get("date", ""))[:16] < change[0] else new


# ---------------------------------------------------------------- the files

def load_all(results: Path) -> tuple[dict, list[Path]]:
    files, other = {}, []
    for p in sorted(results.iterdir()):
        if p.suffix == ".json":
            try:
                files[p.name] = json.loads(p.read_text())
                continue
            except json.JSONDecodeError:
                pass
        if p.is_file():
            other.append(p)
    return files, other


KINDS = [  # (kind, file-name prefixes); first match wins
    ("certify_all", ("certify-all",)),
    ("ablations", ("ablations",)),
    ("time_to_100", ("time_to_100",)),
    ("gpu", ("gpu",)),
    ("recipe_sweep", ("recipe_sweep",)),
    ("certificate_search", ("certificate-search",)),
    ("search_errors", ("search_errors",)),
    ("sample_families", ("sample_families",)),
    ("first_wrong", ("first_wrong",)),
    ("anylength_memory", ("anylength_memory", "anylength-memory")),
    ("length", ("anylength", "lengthgen")),
    ("train_speed", ("train_speed",)),
    ("decode_speed", ("decode_speed",)),
    ("certify_speed", ("certify_speed",)),
    ("data_memory", ("data_memory",)),
    ("attention_speed", ("attention_speed",)),
    ("kill_resume", ("kill_resume",)),
]


def kind_of(name: str, d: dict) -> str | None:
    stem = name.removesuffix(".json")
    if stem.startswith("anylength") and "memory_512" in d:
        return "anylength_memory"
    if isinstance(d.get("certificate"), dict) and "n" in d["certificate"] and "grid" not in d and "runs" not in d \
            and "model" in d and not stem.startswith("certificate-search"):
        return "certify_all"  # bench/certify_all.py's files, whatever their name
    return next((kind for kind, prefixes in KINDS if stem.startswith(prefixes)), None)


def trained_seed(d: dict):
    """The training seed of the model folder a results file measured, where its training config was saved."""
    return (((d.get("config") or {}).get("train") or {}).get("training") or {}).get("seed")


def one_model(d: dict) -> str:
    """The seeds column of a measurement of one model folder."""
    seed = trained_seed(d)
    return "1" if seed is None else f"1 (seed {seed})"


# ---------------------------------------------------------------- tables by topic

def t_certify_all(files, now):
    rows = []
    for name, d in files:
        c = d.get("certificate", {})
        train, seed = (d.get("config") or {}).get("train") or {}, trained_seed(d)
        how = "every problem" if c.get("exhaustive") else f"seeded uniform sample (seed {c.get('seed')})"
        rows.append([d.get("model"), f"{c.get('min_operand')}..{c.get('max_operand')}", f"{n(c.get('wrong'))} of {power(c.get('n'))}",
                     how, bound(c.get("upper_95")), seconds(c.get("seconds")), n(c.get("problems_per_s")),
                     "–" if seed is None else seed, recipe_diff(train, now), machine(d.get("machine")), cite(name, d)])
    return table(["model folder", "operands", "wrong", "drawn", "95% upper bound", "time", "problems/s", "training seed",
                  "recipe against today's", "machine", "file"], rows)


def band_text(band) -> str:
    return f"{band[0]:,}" if band[0] == band[1] else f"{band[0]:,}..{band[1]:,}"


def bands_of(d) -> tuple[list, dict]:
    """A file's bands (every family's rows) and what was measured with them (per_family, locality): lengthgen.py
    nests them as {"bands": [...], ...}; bench/bands.py writes the list and the rest at the top level."""
    b = d.get("bands") or []
    return (b.get("bands", []), b) if isinstance(b, dict) else (b, d)


def band_rows(d):
    return [x for x in bands_of(d)[0] if x.get("family") == "all"]


def t_length(files, now):
    done = [(name, d) for name, d in files if "all" in d and "grid" in d]
    rows = []
    for name, d in done:
        t, c = d.get("training", {}), d.get("certificate") or {}
        lo, hi = d.get("trained_digits", ["?", "?"])
        mult = ", ".join(f"{m['correct']:,}/{m['total']:,}" for m in d.get("multiples", []))
        bands = band_rows(d)
        band = (f"{sum(b['wrong'] for b in bands):,} of {sum(b['n'] for b in bands):,} (to {max(b['band'][1] for b in bands):,} digits)"
                if bands else "–")
        cert = (f"{n(c.get('wrong'))} of {power(c.get('n'))}" + (f"; search {n(c.get('search_wrong'))} of {n(c.get('search_evaluated'))}"
                if c.get("search_evaluated") is not None else "")) if c else "–"
        cfg = d.get("config") or {}
        m = cfg.get("model", {})
        model = f"{m.get('positions', '?')}, {m.get('n_predict', '?')} head{'s' if m.get('n_predict') != 1 else ''}"
        rows.append([name.removesuffix(".json"), model, f"1..{hi}" if lo == 1 else f"{lo}..{hi}", f"1..{d.get('max_digits')}",
                     f"{d['all']['correct']:,}/{d['all']['total']:,}", f"{d['in_range']['correct']:,}/{d['in_range']['total']:,}",
                     mult, cert, band, n(t.get("steps")), n(t.get("samples_per_s")),
                     minutes((d.get("seconds") or {}).get("total")), machine(d.get("machine")), cite(name, d)])
    return table(["run", "positions, heads", "trained digits", "grid digits", "grid right", "in range", "2x, 3x, 4x",
                  "0..9999 certificate; search", "bands of lengths", "steps", "samples/s", "run time", "machine", "file"], rows)


def t_longer(files):
    """Exact match by the longer operand's digits, for every grid file."""
    done = [(name, d) for name, d in files if d.get("by_longer_operand")]
    if not done:
        return ["(no files of this kind)"]
    top = max(x["digits"] for _, d in done for x in d["by_longer_operand"])
    cols = list(range(1, min(top, 16) + 1))
    rows = []
    for name, d in done:
        by = {x["digits"]: x for x in d["by_longer_operand"]}
        rest = [x for k, x in by.items() if k > cols[-1]]
        tail = f"{sum(x['correct'] for x in rest):,}/{sum(x['total'] for x in rest):,}" if rest else "–"
        rows.append([name.removesuffix(".json")] + [pct(by[k]["correct"], by[k]["total"]) if k in by else "–" for k in cols]
                    + [tail])
    return table(["run"] + [str(k) for k in cols] + [f">{cols[-1]}"], rows)


def t_bands(files):
    out = []
    for name, d in files:
        bands = band_rows(d)
        if not bands:
            continue
        rows, about = bands_of(d)
        per = about.get("per_family")
        fams = sorted({x["family"] for x in rows if x["family"] != "all"})
        out += [f"**{name}** ({per} problems a family and band; families: {', '.join(fams)}; {cite(name, d)}):", ""]
        out += table(["operand digits", "problems", "wrong", "95% upper bound", "time"],
                     [[band_text(b["band"]), n(b["n"]), n(b["wrong"]), bound(b.get("upper_95")),
                       seconds(b.get("seconds"))] for b in bands])
        loc = about.get("locality")
        if loc:
            out += ["", f"Locality check: {loc['problems']} problems of {loc['operand_digits']} digits, "
                        f"{loc['operand_digits_redrawn']} operand digits redrawn beyond ±{loc['radius']} block positions: "
                        f"largest logit change {loc['max_abs_logit_difference']}, answers changed {loc['answers_changed']}."]
        out.append("")
    return out or ["(no files of this kind)"]


def t_unfinished(files):
    rows = []
    for name, d in files:
        if "all" in d and "grid" in d or "certificate" in d or "bands" in d:
            continue
        last = (d.get("metrics") or d.get("curve") or [{}])[-1]
        what = d.get("what") or d.get("outcome") or ""
        state = (f"step {n(last.get('step'))}: held-out {pct(last['accuracy'], 1)}, head losses "
                 f"{', '.join(f'{x:.3g}' for x in last.get('head_losses', []))}" if "accuracy" in last else
                 json.dumps(d.get("step_500", {})))
        rows.append([name.removesuffix(".json"), what, state, d.get("command"), cite(name, d)])
    return table(["run", "what", "last measured", "command", "file"], rows)


def t_first_wrong(files):
    rows = []
    for name, d in files:
        for c in d.get("cells", []):
            fw = c.get("first_wrong_token") or {}
            top = sorted(fw.items(), key=lambda kv: -kv[1])[:3]
            rows.append([name.removesuffix(".json"), f"{c['digits_a']}+{c['digits_b']}", f"{c['right']:,}/{c['total']:,}",
                         ", ".join(f"digit {int(k) + 1}: {v}" for k, v in top) or "–", cite(name, d)])
    return table(["results file", "operand digits", "right", "first wrong answer token, most common (1 = least significant digit)",
                  "file"], rows)


def t_anylength_memory(files):
    rows = []
    for name, d in files:
        for key in ("memory_512", "memory_4096"):
            r = d.get(key)
            if r:
                rows.append([f"{r['digits']:,}+{r['digits']:,}", f"{r['right']:,}/{r['problems']:,}", r.get("mode"),
                             seconds(r.get("decode_s")), n(r.get("peak_rss_mb")) + " MB", cite(name, d)])
        p = d.get("per_digit")
        if p:
            rows.append([f"time per answer digit, 4,096 against 64 digits ({p['rows']} rows a batch)",
                         f"{p['ratio_4096_to_64']:.2f}x", "", "", "", cite(name, d)])
    return table(["operands", "right", "decoding", "time", "peak RSS", "file"], rows)


def seeds_runs(d):
    return sorted(d.get("runs", []), key=lambda r: r.get("seed", 0))


def t_time_to_100(files, now):
    rows = []
    for name, d in sorted(files, key=lambda f: f[1].get("date", "")):
        runs = seeds_runs(d)
        if not runs:
            continue
        train = (d.get("config") or {}).get("train")
        stop = " / ".join(n(r.get("steps", r.get("step_to_100"))) + ("" if r.get("stopped_by") in (None, "its stopping rule")
                          else "*") for r in runs)
        wall = " / ".join(seconds(r.get("wall_to_stop_s", r.get("wall_to_100_s"))) for r in runs)
        cert = [r.get("certificate") or {} for r in runs]
        wrong = " / ".join(n(c.get("wrong")) for c in cert) if any(cert) else "–"
        size = {c.get("n") for c in cert if c.get("n")}
        search = " / ".join(n((c.get("search") or {}).get("wrong")) for c in cert) if any(c.get("search") for c in cert) else "–"
        sps = [r.get("samples_per_s") for r in runs if r.get("samples_per_s")]
        rows.append([name.removesuffix(".json"), ", ".join(str(r["seed"]) for r in runs), recipe_diff(train, now), stop, wall,
                     f"{n(min(sps))}–{n(max(sps))}" if sps else "–",
                     f"{wrong} of {', '.join(power(s) for s in sorted(size))}" if size else "–",
                     search + (" " + rule(d, SEARCH_ARGMAX, "by margin ≤ 0", "") if search != "–" else ""),
                     d.get("date", "")[:10], cite(name, d)])
    return table(["file", "seeds", "recipe against today's train_config.yaml", "steps (* = not stopped by its rule)",
                  "launch to stop", "samples/s", "certificate wrong (uniform sample)", "search found", "date", "file @ commit"],
                 rows)


def t_gpu(files, now):
    rows = []
    for name, d in files:
        cfg = d.get("config") or {}
        for run, cert_key, cfg_key in (("train_default", "certify_default_all", "default"), ("train_6.4M", "certify_6.4M", "6.4M")):
            t = d.get(run)
            if not t:
                continue
            train = (cfg.get(cfg_key) or {}).get("train") or {}
            prec = (train.get("training") or {}).get("precision")
            c = d.get(cert_key) or {}
            c6 = t.get("certificate_1e6") or {}
            certs = []
            if c.get("n"):
                certs.append(f"{n(c['wrong'])} of {power(c['n'])} ({'every problem' if c.get('exhaustive') else 'sampled'}, "
                             f"{n(c.get('problems_per_s'))}/s)")
            if c6.get("n"):
                certs.append(f"{n(c6['wrong'])} of {power(c6['n'])} sampled")
            label = "train_config.yaml of its commit" if cfg_key == "default" else "configs/reference-6.4M.yaml of its commit"
            rows.append([label, prec, recipe_diff(train, now) if cfg_key == "default" else recipe_diff(train, now, 2),
                         n(t.get("steps")), seconds(t.get("wall_to_stop_s")), n(t.get("samples_per_s")), "; ".join(certs) or "–",
                         machine(d.get("machine")), cite(name, d)])
    return table(["model", "precision", "recipe against today's", "steps", "launch to stop", "samples/s", "certificates",
                  "machine", "file"], rows)


def t_recipe_sweep(files, now):
    rows = []
    for name, d in files:
        cfg = d.get("config") or {}
        for v, s in d.get("summary", {}).items():
            rows.append([v, ", ".join(d.get("variants", {}).get(v, [])) or "(none)", ", ".join(map(str, d.get("seeds", []))),
                         " / ".join(n(w) for w in s.get("wrong", [])) + f" of {power(d.get('certify'))}",
                         " / ".join(n(x) for x in s.get("steps", [])), recipe_diff((cfg.get(v) or {}).get("train"), now, 2),
                         machine(d.get("machine")), cite(name, d)])
    return table(["variant", "overrides", "seeds", "wrong (sampled)", "steps", "recipe against today's", "machine", "file"], rows)


def t_certificate_search(files):
    rows = []
    for name, d in files:
        s = d.get("search") or {}
        rows.append([d.get("model"), f"{n(d.get('wrong'))} of {power(d.get('n'))}", bound(d.get("upper_95")),
                     f"{n(s.get('wrong'))} of {n(s.get('evaluated'))}" if s else "–",
                     f"{s['thinnest_margin']:.3g}" if s.get("thinnest_margin") is not None else "–",
                     rule(d, SEARCH_ARGMAX, "margin ≤ 0", "argmax"), cite(name, d)])
    return table(["model", "sample wrong", "95% upper bound", "search: wrong of evaluated", "thinnest margin (logits)",
                  "a find is", "file"], rows)


def t_search_errors(files):
    rows = []
    for name, d in files:
        for m in d.get("models", []):
            rows.append([m["model"], f"{d.get('seed')}, {d.get('step')}", f"{n(m['gate_wrong'])} of {power(m['gate'])}",
                         f"{n(m['search_wrong'])} of {n(m['search_evaluated'])}", seconds(m.get("search_s")),
                         rule(d, SEARCH_ARGMAX, "margin ≤ 0", "argmax"), cite(name, d)])
    return table(["model", "gate seed, step", "gate wrong", "search wrong of evaluated", "search time", "a find is", "file"], rows)


def t_sample_families(files):
    rows = []
    for name, d in files:
        for kind, k in d.get("kinds", {}).items():
            rows.append([d.get("model"), kind, f"{n(k['wrong'])} of {power(d.get('problems'))}", n(k.get("margin_below_1")),
                         n(k.get("margin_below_2")), rule(d, MARGIN_SHARED, "the script's own", "the certificate's"),
                         cite(name, d)])
    return table(["model", "problems", "wrong", "margin below 1", "below 2", "margins measured by", "file"], rows)


def t_ablations(files):
    rows = []
    for name, d in files:
        runs = d.get("runs", [])
        for row, info in d.get("rows", {}).items():
            rs = sorted((r for r in runs if r["row"] == row and r.get("certificate")), key=lambda r: r["seed"])
            if not rs:
                continue
            wrong = sum(r["certificate"]["wrong"] for r in rs)
            total = sum(r["certificate"]["n"] for r in rs)
            loads = [r.get("load_1min", 0) for r in rs]
            dates = sorted({r["date"][:10] for r in rs})
            rows.append([row, info.get("label", ""), " / ".join(n(r["certificate"]["wrong"]) for r in rs) + f" of {n(rs[0]['certificate']['n'])}",
                         f"{wrong / total:.2g}", n(statistics.median(r["samples_per_s"] for r in rs)),
                         f"{statistics.fmean(r['passes_per_answer'] for r in rs):.2f}", ", ".join(dates),
                         f"{min(loads):.1f}–{max(loads):.1f}", cite(name, d)])
    return table(["row", "change", "wrong per seed", "pooled rate", "samples/s (median)", "passes/answer", "dates",
                  "load average (1 min)", "file"], rows)


def t_speed(groups):
    out = []
    for name, d in groups.get("train_speed", []):
        out += [f"**Training speed** ({cite(name, d)}; fp32 matmul peak {d['matmul_peak_fp32'] / 1e9:.1f} GFLOP/s, "
                f"bf16 {d['matmul_peak_bf16'] / 1e9:.1f}):", ""]
        out += table(["config", "parameters", "batch", "samples/s", "of the fp32 peak", "trainer step vs a plain loop", "with sdpa"],
                     [[r["config"], n(r["parameters"]), r["batch_size"], n(r["samples_per_s"]),
                       f"{r.get('fraction_of_fp32_peak', 0):.0%}", f"{r['trainer_overhead']:+.1%}", n(r["sdpa_samples_per_s"])]
                      for r in d.get("runs", [])]) + [""]
    for name, d in groups.get("decode_speed", []):
        modes = d.get("modes", {})
        out += [f"**Decoding** {n(d.get('problems'))} problems, batch {d.get('batch_size')} ({cite(name, d)}):", ""]
        out += table(["mode", "problems/s", "passes/answer", "exact match", "same answers as single", "speed vs single"],
                     [[m, n(r["problems_per_s"]), f"{r['passes_per_answer']:.2f}", f"{100 * r['accuracy']:.3f}%",
                       f"{100 * r['same_answers_as_single']:.1f}%", f"{r['speed_vs_single']:.2f}x"] for m, r in modes.items()])
        sweep = d.get("batch_sweep", {})
        if sweep:
            out += ["", "By batch size, speed against `single`:", ""]
            ms = list(next(iter(sweep.values()))["speed_vs_single"])
            out += table(["batch"] + ms, [[b] + [f"{r['speed_vs_single'][m]:.2f}x" for m in ms] for b, r in sweep.items()])
        out.append("")
    for name, d in groups.get("certify_speed", []):
        out += [f"**Certification speed**, {n(d.get('parameters'))} parameters, {d.get('tokens_per_problem')} tokens a problem "
                f"({cite(name, d)}):", ""]
        out += table(["configuration", "problems/s", "of the forward-pass limit (peak read beside it)", "of the run's highest peak"],
                     [[k, n(r["problems_per_s"]), f"{r['fraction_of_limit']:.0%}", f"{r.get('fraction_of_highest_limit', 0):.0%}"]
                      for k, r in d.get("runs", {}).items()]) + [""]
    for name, d in groups.get("data_memory", []):
        med = d.get("median", {})
        out += [f"**Training memory**, {d.get('steps')} steps, against commit `{d.get('baseline')}` ({cite(name, d)}):", ""]
        out += table(["tree", "peak RSS (median)", "samples/s (median)", "start-up"],
                     [[k, f"{n(v['peak_rss_mb'])} MB", n(v["samples_per_s"]), seconds(v.get("start_up_s"))] for k, v in med.items()])
        out.append("")
    for name, d in groups.get("attention_speed", []):
        out += [f"**Attention paths** ({cite(name, d)}):", ""]
        rows = []
        for c in d.get("cases", []):
            for p, r in c.get("paths", {}).items():
                rows.append([c["rows"], c["digits"], "fwd+bwd" if c.get("backward") else "fwd", p,
                             f"{r['ms']:.1f} ms" if "ms" in r else r.get("error", r.get("skipped", "")),
                             f"{n(r['peak_rss_mb'])} MB" if "peak_rss_mb" in r else "–"])
        out += table(["rows", "digits", "pass", "path", "time", "peak RSS"], rows) + [""]
    return out


def t_kill_resume(files):
    rows = []
    for name, d in files:
        same = d.get("identical", {})
        rows.append([len(d.get("kills", [])), ", ".join(sorted({k["when"] for k in d.get("kills", [])})),
                     f"{sum(same.values())} of {len(same)} identical", cite(name, d)])
    return table(["kills", "when", "weights, optimizer state and metrics against the uninterrupted run", "file"], rows)


# ---------------------------------------------------------------- headline

def headline(files: dict, link) -> list[str]:
    """The README's table: the flagship and the default model, each figure with N, how drawn, seeds, machine, command."""
    rows = []
    runs = sorted(((f, d) for f, d in files.items() if re.fullmatch(r"anylength-heads2-seed\d+\.json", f)),
                  key=lambda fd: fd[1]["config"]["training"]["seed"])
    if runs:
        def per_seed(values):  # "a / b" over the seeds, in seed order
            return " / ".join(values)
        seeds = [str(d["config"]["training"]["seed"]) for _, d in runs]
        who = f"{len(runs)} (seed{'s' if len(runs) > 1 else ''} {', '.join(seeds)})"
        how = "; ".join(f"`{d['command'].split('  (=')[0]}`" for _, d in runs)
        cites = ", ".join(link(f, d) for f, d in runs)
        d0 = runs[0][1]
        rows.append(["Any-length model: exact match over every pair of operand lengths 1..32 x 1..32 hex digits "
                     f"(trained on 1..{d0['trained_digits'][1]})", per_seed(f"{d['all']['correct']:,}" for _, d in runs)
                     + f" of {d0['all']['total']:,}", "fresh problems, uniform over the numbers of each length pair: 100 a "
                     "pair, 1,000 where the lengths are equal", who, machine(d0["machine"]), how, cites])
        certs = [d.get("certificate") for _, d in runs]
        if all(certs):
            c = certs[0]
            wrong = per_seed(f"{c['wrong']:,}" for c in certs)
            found = per_seed(f"{c['search_wrong']:,} of {c['search_evaluated']:,}" for c in certs)
            rows.append([f"Any-length model on operands {c['min_operand']}..{c['max_operand']}",
                         f"{wrong} wrong of {power(c['n'])}; error search {found} wrong",
                         "seeded uniform sample; the search starts from its thinnest", who, machine(d0["machine"]), how, cites])
        bands = [band_rows(d) for _, d in runs]
        if all(bands):
            b0 = bands[0]
            sizes = ", ".join(f"{b['n']:,} at {band_text(b['band'])}" for b in b0)
            fams = sorted({x["family"] for x in bands_of(d0)[0] if x["family"] != "all"})
            rows.append([f"Any-length model, operands of {b0[0]['band'][0]} to {max(b['band'][1] for b in b0):,} "
                         f"hex digits in {len(b0)} bands", per_seed(f"{sum(b['wrong'] for b in bs):,}" for bs in bands)
                         + f" wrong of {sum(b['n'] for b in b0):,}", f"equal shares of {len(fams)} families "
                         f"({', '.join(fams)}) per band: {sizes} digits", who, machine(d0["machine"]), how, cites])
    for f, d in files.items():
        m = re.fullmatch(r"anylength-heads2-seed(\d+)-bands.*\.json", f)
        bs = band_rows(d) if m else []
        if bs:
            rows.append([f"Any-length model, a larger certificate: {len(bs)} bands of operand lengths, "
                         f"{bs[0]['band'][0]} to {max(b['band'][1] for b in bs):,} hex digits",
                         f"{sum(b['wrong'] for b in bs):,} wrong of {sum(b['n'] for b in bs):,}; 95% upper bound a band: "
                         + ", ".join(f"{bound(max(b['upper_95'] for b in bs if b['n'] == size))} of {size:,}"
                                     for size in sorted({b['n'] for b in bs}, reverse=True)),
                         "four families in equal shares (uniform, carry runs, all-F plus 1, mixed lengths): "
                         + ", ".join(f"{b['n']:,} at {band_text(b['band'])}" for b in bs) + " digits",
                         f"1 (seed {m.group(1)})", machine(d["machine"]), f"`{d['command']}`", link(f, d)])
    mem = files.get("anylength.json")
    if mem and "memory_512" in mem:
        a, b, p = mem["memory_512"], mem["memory_4096"], mem.get("per_digit") or {}
        rows.append(["Any-length model at long lengths: right answers, peak memory (RSS of the whole process) and time "
                     "per answer digit",
                     f"{a['right']:,} of {a['problems']:,} at {a['digits']:,}+{a['digits']:,} digits, {n(a['peak_rss_mb'])} MB; "
                     f"{b['right']:,} of {b['problems']:,} at {b['digits']:,}+{b['digits']:,}, {n(b['peak_rss_mb'])} MB"
                     + (f"; per digit at 4,096 digits {p['ratio_4096_to_64']:.2f}x that at 64 ({p['rows']} rows a batch)"
                        if p else ""),
                     f"random operands of exactly that length, decoded ({a['mode']})",
                     one_model(mem), machine(mem["machine"]),
                     f"`{mem['command']}`", link("anylength.json", mem)])
    for f, d in sorted(files.items()):
        sweep = d.get("batch_sweep") or {}
        if not (f.startswith("decode_speed-") and all("wall_vs_single" in r for r in sweep.values()) and sweep):
            continue
        walls = ", ".join(f"{r['wall_vs_single']['verified']:.2f}x at batch {b}" for b, r in sweep.items())
        passes = {round(r["passes_vs_single"]["verified"], 2) for r in sweep.values()}
        what = "any-length model" if "anylength" in f else "default model"
        operands = f"operands of {d['digits']} base-{(d['config'].get('model') or {}).get('base', 16)} digits" if d.get("digits") else "operands 0..9999, none in its training file"
        rows.append([f"Verified decoding ({what}, {operands}): same answers as single "
                     "(plain greedy) decoding, in fewer forward passes; its wall time against single's",
                     f"{100 * d['modes']['verified']['same_answers_as_single']:.1f}% the same; passes "
                     f"{'/'.join(f'{x:.2f}' for x in sorted(passes))}x; wall {walls}",
                     f"random problems: the same answers on {n(d['problems'])}, wall time on "
                     + ", ".join(f"{n(r['problems'])} at batch {b}" for b, r in sweep.items())
                     + ", both modes side by side in one run"
                     + (", taking turns on slices of them" if any(r.get("slices", 1) > 1 for r in sweep.values()) else ""),
                     one_model(d),
                     machine(d["machine"]), f"`{d['command']}`", link(f, d)])
    for f, d in files.items():
        if f.startswith("certify-all") and d.get("certificate", {}).get("exhaustive"):
            c = d["certificate"]
            rows.append([f"Default model (seed {trained_seed(d)}, trained on a CPU), every problem of "
                         f"{c['min_operand']}..{c['max_operand']} + {c['min_operand']}..{c['max_operand']}",
                         f"{c['wrong']:,} wrong of {power(c['n'])} (at most {bound(c['upper_95'])} at 95%)", "exhaustive",
                         "1", machine(d["machine"]), f"`python3 bench/certify_all.py --model model --name {f[:-5]}`", link(f, d)])
    six = [(f, d) for f, d in files.items() if f.startswith("time_to_100-uniform-rows-0.5")]
    if six:
        runs = [r for _, d in six for r in d["runs"]]
        wrong = [r["certificate"]["wrong"] for r in sorted(runs, key=lambda r: r["seed"])]
        found = [(r["certificate"].get("search") or {}).get("wrong") for r in sorted(runs, key=lambda r: r["seed"])]
        walls = sorted(r["wall_to_stop_s"] for r in runs)
        rows.append(["Default recipe (as of the files' commits), one model per seed: wrong on a 10^6 sample of 0..9999 + 0..9999, then the error "
                     "search's finds", f"{' / '.join(map(str, wrong))} of 10^6; search {' / '.join(map(str, found))}",
                     "seeded uniform sample (the same for every seed)", f"{len(runs)} (seeds {', '.join(str(r['seed']) for r in sorted(runs, key=lambda r: r['seed']))})",
                     machine(six[0][1]["machine"]), "; ".join(f"`{d['command'].split(' --name')[0]}`" for _, d in six),
                     ", ".join(link(f, d) for f, d in six)])
        rows.append(["Default recipe: launch to its own stop", f"{seconds(walls[0])} to {seconds(walls[-1])} "
                     f"(median {seconds(statistics.median(walls))})", "–", str(len(runs)), machine(six[0][1]["machine"]),
                     "(same runs)", ", ".join(link(f, d) for f, d in six)])
    return table(["result", "measured", "N, how drawn", "seeds", "machine", "command", "file @ commit"], rows)


# ---------------------------------------------------------------- the documents

def tolerant(fn, files: list, unread: list, *args) -> list[str]:
    """fn's table of the files it can read; the others join `unread` (listed under Other files, with why)."""
    good = []
    for f in files:
        try:
            fn([f], *args)
            good.append(f)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as e:
            unread.append((f[0], f"{type(e).__name__}: {e}"))
    return fn(good, *args)


def build(root: Path = ROOT) -> tuple[str, str]:
    """(docs/results.md, the README block between the markers, markers included)."""
    files, other = load_all(root / "bench" / "results")
    now = today(root)
    groups, unknown = {}, []
    for name, d in files.items():
        k = kind_of(name, d) if isinstance(d, dict) else None
        if k:
            groups.setdefault(k, []).append((name, d))
        else:
            unknown.append(root / "bench" / "results" / name)
    g = lambda k: groups.get(k, [])  # noqa: E731
    length = g("length")
    unread = []
    L = ["# Results", "",
         "Generated by `make results` (`bench/results_tables.py`) from the files in `bench/results/`; do not edit by hand "
         "(`tests/test_results_docs.py` fails when this file differs from what the generator makes). Every row names the "
         "file it comes from and the commit it was measured at; results measured at an older commit were measured on "
         "that commit's code. Where a run's training config differs from today's `train_config.yaml`, the row says how "
         "(\"recipe against today's\"). Samples are samples: 0 wrong of N bounds the error rate below about 3/N at 95%; "
         "only an exhaustive certificate shows a model exact on its range. How each file was made: its `command`, "
         "`commit`, `date`, `machine` and resolved `config` fields, and `provenance` where they were filled in later "
         "from the repository's history.", "",
         "## Headline", ""]
    L += headline(files, cite)
    L += ["", "## Exhaustive and device certificates (`bench/certify_all.py`)", ""] + tolerant(t_certify_all, g("certify_all"), unread, now)
    L += ["", "## Length generalization (`lengthgen.py`, `make anylength`)", "",
          "Grid: fresh problems uniform over the numbers of each length, 100 a pair of lengths, 1,000 where both "
          "operands have the same length (2x, 3x, 4x are read there); teacher-forced head-1 argmax at every answer "
          "token, which is exactly greedy decoding. One seed per run.", ""] + tolerant(t_length, length, unread, now)
    L += ["", "### Exact match by the longer operand's digits", ""] + tolerant(t_longer, [f for f in length if "grid" in f[1]], unread)
    L += ["", "### Bands of lengths", ""] + tolerant(t_bands, length + g("certify_all"), unread)
    L += ["### Runs stopped before their grid", ""] + tolerant(t_unfinished, length, unread)
    L += ["", "### Long operands: first wrong answer token (`bench/first_wrong_token.py`)", ""] + tolerant(t_first_wrong, g("first_wrong"), unread)
    L += ["", "### Long operands: decoding time and memory (`bench/anylength.py`)", ""] + tolerant(t_anylength_memory, g("anylength_memory"), unread)
    L += ["", "## Training runs on 0..9999 (`bench/time_to_100.py`)", "",
          "One row per file; per-seed values separated by `/`. Each saved model is certified on a seeded uniform sample "
          "of 0..9999 + 0..9999 (seed 0: within a file, the same problems for every seed), then, in files from 2026-11-29 on, searched "
          "for wrong problems near its thinnest (the search finds problems beside the sample and is never counted into "
          "it). Files with no value under \"search found\" predate the search; finds marked \"by margin ≤ 0\" were "
          "counted by a margin of 0 or less (exact ties included), before finds were confirmed by argmax.", ""] + tolerant(t_time_to_100, g("time_to_100"), unread, now)
    L += ["", "## On a GPU (`bench/gpu.py`)", ""] + tolerant(t_gpu, g("gpu"), unread, now)
    L += ["", "## Recipe sweeps (`bench/recipe_sweep.py`)", ""] + tolerant(t_recipe_sweep, g("recipe_sweep"), unread, now)
    L += ["", "## Certificates with their error search (`inference.py --certify`)", ""] + tolerant(t_certificate_search, g("certificate_search"), unread)
    L += ["", "## Error search from a gate sample (`bench/search_errors.py`)", ""] + tolerant(t_search_errors, g("search_errors"), unread)
    L += ["", "## Wrong and thin problems by kind (`bench/sample_families.py`)", ""] + tolerant(t_sample_families, g("sample_families"), unread)
    L += ["", "## Ablations (`make ablations`)", "",
          "Operands 0..999, a 1,000-step schedule, 10^5-problem certificates (seed 0) per run; the full table with "
          "how each run ended is [ablations.md](ablations.md), the design in [ablation-study.md](ablation-study.md).", ""]
    L += tolerant(t_ablations, g("ablations"), unread)
    speed = {k: v for k, v in groups.items() if k in ("train_speed", "decode_speed", "certify_speed", "data_memory",
                                                      "attention_speed")}
    for k, fs in list(speed.items()):
        ok = []
        for f in fs:
            try:
                t_speed({k: [f]})
                ok.append(f)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as e:
                unread.append((f[0], f"{type(e).__name__}: {e}"))
        speed[k] = ok
    L += ["", "## Speed and memory", ""] + t_speed(speed)
    L += ["## Reliability (`bench/kill_resume.py`)", ""] + tolerant(t_kill_resume, g("kill_resume"), unread)
    L += ["", "## Provenance of every file", ""]
    L += table(["file", "commit", "date", "machine", "command"],
               [[f"[{name}](../bench/results/{name})", str(d.get("commit", "not recorded")).split()[0][:7], d.get("date", ""),
                 machine(d.get("machine")), d.get("command", "not recorded")] for name, d in files.items() if isinstance(d, dict)])
    L += ["", "## Other files", "",
          "Files in `bench/results/` that no table above reads (logs, lists of wrong problems, and result files of a "
          "kind the generator does not know yet):", ""]
    L += [f"- [{p.name}](../bench/results/{p.name}) ({p.stat().st_size:,} bytes)" for p in sorted(other + unknown)]
    L += [f"- [{name}](../bench/results/{name}): of a known kind, but its table could not read it ({why})"
          for name, why in sorted(unread)]
    if not (other or unknown or unread):
        L.append("(none)")
    docs = "\n".join(L) + "\n"
    block = "\n".join([START, "<!-- generated by `make results` from bench/results/; edit bench/results_tables.py, not this -->",
                       *headline(files, cite_readme), END])
    return docs, block


def readme_with(block: str, readme: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md: no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    return head + block + rest.split(END, 1)[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 when docs/results.md or the README block is stale")
    args = p.parse_args(argv)
    docs, block = build()
    readme = readme_with(block, README.read_text())
    if args.check:
        stale = [str(path.relative_to(ROOT)) for path, text in ((DOCS, docs), (README, readme))
                 if not path.is_file() or path.read_text() != text]
        if stale:
            print(f"stale: {', '.join(stale)}; run `make results`", file=sys.stderr)
            return 1
        return 0
    DOCS.write_text(docs)
    README.write_text(readme)
    print(f"wrote {DOCS.relative_to(ROOT)} and the README's results block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
