"""Figures: attention heatmaps, training curves, accuracy by operand length, the ablation table. Each `*_figure`
function builds a matplotlib Figure (what the tests inspect); the others write it as a PNG, atomically, and close it."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from .common.io import atomic_path  # noqa: E402
from .common.stats import upper_bound_95  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _token_axes(ax, tokens, positions, show_y=True):
    ticks = range(len(tokens))
    ax.set_xticks(ticks, [f"{t}\n{p}" for t, p in zip(tokens, positions)], fontsize=7)
    if show_y:
        ax.set_yticks(ticks, [f"{t} {p}" for t, p in zip(tokens, positions)], fontsize=7)
    else:
        ax.set_yticks([])


def _heatmap(ax, att, tokens, positions, show_y=True):
    """One (T, T) attention map, queries down, keys across, on the shared 0..1 scale."""
    im = ax.imshow(att.numpy(), cmap="viridis", vmin=0, vmax=1)
    _token_axes(ax, tokens, positions, show_y)
    return im


def layer_figure(att, tokens: list[str], positions: list[int], title: str, layer: int, heads: list[int]):
    """One layer: a panel per head of `att` (H, T, T). Axis labels: the token, and its block position under it."""
    fig, axes = plt.subplots(1, len(heads), figsize=(3.6 * len(heads) + 1, 4.2), squeeze=False)
    for ax, h in zip(axes[0], heads):
        im = _heatmap(ax, att[h], tokens, positions, show_y=h == heads[0])
        ax.set_title(f"head {h + 1}", fontsize=9)
        ax.set_xlabel("attended token (block position)", fontsize=8)
    axes[0][0].set_ylabel("query token", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="attention weight")
    fig.suptitle(f"layer {layer + 1}: {title}", fontsize=10)
    return fig


def layers_figure(attentions, tokens: list[str], positions: list[int], title: str, layers: list[int], heads: list[int]):
    """Layers side by side, each the mean of the chosen heads."""
    fig, axes = plt.subplots(1, len(layers), figsize=(3.4 * len(layers) + 1, 4.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        im = _heatmap(ax, attentions[layer][heads].mean(0), tokens, positions, show_y=layer == layers[0])
        ax.set_title(f"layer {layer + 1} (mean of heads)", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="attention weight")
    fig.suptitle(title, fontsize=10)
    return fig


def grid_figure(attentions, tokens: list[str], positions: list[int], title: str, layers: list[int], heads: list[int]):
    """Every chosen layer (rows) and head (columns) in one figure.

    Built without pyplot: a server draws these from several threads at once, and pyplot's figure registry is
    shared state that also keeps every figure alive until it is closed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.0 * len(heads) + 1.0, 3.0 * len(layers) + 0.6), layout="constrained")
    axes = fig.subplots(len(layers), len(heads), squeeze=False)
    for row, layer in zip(axes, layers):
        for ax, h in zip(row, heads):
            im = _heatmap(ax, attentions[layer][h], tokens, positions, show_y=h == heads[0])
            if layer == layers[0]:
                ax.set_title(f"head {h + 1}", fontsize=9)
        row[0].set_ylabel(f"layer {layer + 1}\nquery token", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("attended token (block position)", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.5, label="attention weight")
    fig.suptitle(title, fontsize=10)
    return fig


def attention_figures(attentions, tokens: list[str], positions: list[int], title: str, out_dir: Path,
                      layers: list[int], heads: list[int]) -> list[Path]:
    """attentions: per layer a (H, T, T) tensor. One file per layer (a panel per head) and all_layers.png."""
    written = [_save(layer_figure(attentions[layer], tokens, positions, title, layer, heads),
                     out_dir / f"layer_{layer + 1}_attention.png") for layer in layers]
    written.append(_save(layers_figure(attentions, tokens, positions, title, layers, heads), out_dir / "all_layers.png"))
    return written


def training_curves_figure(rows: list[dict]):
    """Loss per head and held-out exact match, against step (top) and training wall time (bottom)."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for r, (key, label) in enumerate((("step", "step"), ("train_time_s", "training time (s)"))):
        x = [row[key] for row in rows]
        ax = axes[r][0]
        for j in range(len(rows[0]["head_losses"])):
            ax.plot(x, [row["head_losses"][j] for row in rows], label=f"head {j + 1} (t+{j + 1}), held-out")
        ax.plot(x, [row["train_loss"] for row in rows], "k:", label="training batch, mean of heads")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("answer-token loss")
        ax.legend(fontsize=8)
        ax = axes[r][1]
        ax.plot(x, [100 * row["accuracy"] for row in rows], label="greedy exact match (head 1)")
        for j in range(1, len(rows[0]["head_exact"])):
            ax.plot(x, [100 * row["head_exact"][j] for row in rows], "--", label=f"head {j + 1}, teacher-forced")
        ax.set_ylim(0, 101)
        ax.set_xlabel(label)
        ax.set_ylabel("held-out exact match (%)")
        ax.legend(fontsize=8)
    fig.suptitle(f"training: {len(rows)} evaluations, best {max(r['accuracy'] for r in rows):.2%}")
    fig.tight_layout()
    return fig


def training_curves(metrics_path: Path, out: Path) -> Path:
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line]
    return _save(training_curves_figure(rows), out)


def accuracy_figure(by_length: dict, base: int, title: str):
    """Heatmap of exact match by digit length of a (rows) and b (columns); by_length: (a, b) -> (correct, total)."""
    lens_a = sorted({a for a, _ in by_length})
    lens_b = sorted({b for _, b in by_length})
    grid = [[(by_length[(a, b)][0] / by_length[(a, b)][1]) if (a, b) in by_length else float("nan")
             for b in lens_b] for a in lens_a]
    fig, ax = plt.subplots(figsize=(1.1 * len(lens_b) + 2.5, 0.9 * len(lens_a) + 1.8))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1)
    for i, a in enumerate(lens_a):
        for j, b in enumerate(lens_b):
            if (a, b) in by_length:
                c, n = by_length[(a, b)]
                ax.text(j, i, f"{c / n:.1%}\n{n}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(lens_b)), lens_b)
    ax.set_yticks(range(len(lens_a)), lens_a)
    ax.set_xlabel(f"digits of b (base {base})")
    ax.set_ylabel(f"digits of a (base {base})")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="exact match")
    return fig


def accuracy_by_length(by_length: dict, base: int, title: str, out: Path) -> Path:
    return _save(accuracy_figure(by_length, base, title), out)


def ablation_figure(summaries: list[dict], out: Path) -> Path:
    """Per ablation row (top to bottom): each seed's certified error rate, and how long its run took.

    A model with no error is drawn at its 95% upper bound as `<`; a run that hit the time budget as `x`
    at the budget, one whose schedule ended as a square, one its stopping rule stopped as a dot."""
    fig, (err, dur) = plt.subplots(1, 2, figsize=(11, 0.45 * len(summaries) + 1.8), sharey=True)
    marks = {"stopping rule": ("o", "stopped by its rule"), "schedule end": ("s", "schedule ended"),
             "budget": ("x", "time budget hit")}
    seen = set()
    for y, s in enumerate(summaries):
        for r in s["runs"]:
            if r["outcome"] not in marks:
                continue
            c = r["certificate"]
            rate = c["wrong"] / c["n"] if c["wrong"] else upper_bound_95(0, c["n"])
            err.plot(rate, y, "<" if not c["wrong"] else "o", color="C0", alpha=0.8)
            marker, label = marks[r["outcome"]]
            dur.plot(r["time_s"], y, marker, color="C1", label=None if label in seen else label)
            seen.add(label)
        if s["n"]:
            err.plot(s["upper_95"], y, "|", color="k", markersize=12)
    err.set_xscale("log")
    rates = [x for line in err.get_lines() for x in line.get_xdata()]
    if rates:  # whole decades (no crowded minor labels), with room for marks at the edges
        lo, hi = math.floor(math.log10(min(rates))), math.ceil(math.log10(max(rates)))
        err.set_xlim(10 ** min(lo, hi - 1) / 1.5, 10 ** hi * 1.5)
    err.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    err.set_xlabel("certified error rate, one mark per seed\n(| pooled 95% upper bound; < none wrong, drawn at its bound)")
    budgets = {r["budget_s"] for s in summaries for r in s["runs"]}
    for b in budgets:
        dur.axvline(b, color="0.6", linestyle="--", linewidth=1)
    dur.set_xlabel("seconds from launch until the run stopped\n(dashed: the time budget)")
    times = [x for line in dur.get_lines() for x in line.get_xdata()]
    dur.set_xlim(0, 1.05 * max(times))
    if seen:
        dur.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    err.set_yticks(range(len(summaries)), [s["row"] for s in summaries])
    err.set_ylim(len(summaries) - 0.5, -0.5)  # first row on top
    for ax in (err, dur):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def length_grid(accuracy: dict, max_digits: int, trained: tuple[int, int], base: int, title: str, out: Path,
                marks: list[int] = ()) -> Path:
    """Exact match on a max_digits x max_digits grid of operand lengths, the trained lengths outlined and
    the diagonal cells `marks` (e.g. 2x, 3x, 4x the trained length) labelled with their accuracy."""
    from matplotlib.patches import Rectangle

    grid = [[accuracy.get((a, b), float("nan")) for b in range(1, max_digits + 1)] for a in range(1, max_digits + 1)]
    fig, ax = plt.subplots(figsize=(7.5, 6.4))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, extent=(0.5, max_digits + 0.5, max_digits + 0.5, 0.5))
    lo, hi = trained
    ax.add_patch(Rectangle((lo - 0.5, lo - 0.5), hi - lo + 1, hi - lo + 1, fill=False, edgecolor="black", lw=2,
                           label=f"trained: {lo}..{hi} digits"))
    for n in marks:
        if (n, n) in accuracy:
            ax.annotate(f"{accuracy[(n, n)]:.0%}", (n, n), ha="center", va="center", fontsize=8, fontweight="bold")
    ticks = sorted({1, *range(4, max_digits + 1, 4), max_digits})
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel(f"digits of b (base {base})")
    ax.set_ylabel(f"digits of a (base {base})")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="exact match")
    return _save(fig, out)
