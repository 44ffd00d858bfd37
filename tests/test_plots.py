import json
import sys

import matplotlib.pyplot as plt
import pytest
import torch
from PIL import Image

from conftest import run_script
from hexadd import plots
from hexadd.inference.loading import load_model

PNG = b"\x89PNG\r\n\x1a\n"
# 12+34=46 as the model reads it (digits reversed), with the block position of each token.
TOKENS, POSITIONS = "+21+43+64+", [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def assert_png(path):
    """A complete PNG file, not an empty or cut-off one."""
    assert path.read_bytes()[:8] == PNG, path
    with Image.open(path) as im:
        im.verify()


def panels(fig):
    """The figure's heatmap panels (its colorbars are axes too, without images)."""
    return [ax for ax in fig.axes if ax.images]


def keep_figures(monkeypatch, *names):
    """Record every figure the named builders of hexadd.plots make; a closed figure keeps its content."""
    made = {name: [] for name in names}
    for name in names:
        def build(*args, _build=getattr(plots, name), _made=made[name], **kwargs):
            _made.append(_build(*args, **kwargs))
            return _made[-1]
        monkeypatch.setattr(plots, name, build)
    return made


def attention_cli(monkeypatch, capsys, *args):
    """visualize_attention.py run in this process (no ~10 s launch): exit code, stdout, stderr."""
    import visualize_attention
    monkeypatch.setattr(sys, "argv", ["visualize_attention.py", *args])
    code = 0
    try:
        visualize_attention.entry()
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_attention_figures_from_the_command_line(tiny_run, tmp_path):
    out = tmp_path / "att"
    proc = run_script("visualize_attention.py", "12+34", "--model", str(tiny_run / "model"), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"12+34=46: wrote 3 figures to {out}/\n"
    # The tiny model: 2 layers, so 2 layer files and the summary.
    assert sorted(p.name for p in out.iterdir()) == ["all_layers.png", "layer_1_attention.png", "layer_2_attention.png"]
    for path in out.iterdir():
        assert_png(path)


def test_attention_panels_show_the_chosen_heads(tiny_run, tmp_path, monkeypatch, capsys):
    made = keep_figures(monkeypatch, "layer_figure", "layers_figure")
    before = set(plt.get_fignums())
    model_dir = str(tiny_run / "model")
    code, out, err = attention_cli(monkeypatch, capsys, "12+34", "--model", model_dir, "--out", str(tmp_path),
                                   "--layers", "2", "--heads", "1,3")
    assert code == 0, err
    assert out == f"12+34=46: wrote 2 figures to {tmp_path}/\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all_layers.png", "layer_2_attention.png"]
    assert set(plt.get_fignums()) == before  # figures are closed

    model, tok = load_model(model_dir)
    model.set_attn_implementation("eager")
    ids = torch.tensor([tok.encode(TOKENS)])
    with torch.no_grad():
        att = model(ids, attention_mask=torch.ones_like(ids), output_attentions=True).attentions[1][0]  # layer 2: (H, T, T)
    (fig,) = made["layer_figure"]
    heads = panels(fig)
    assert [ax.get_title() for ax in heads] == ["head 1", "head 3"]
    assert fig.get_suptitle().startswith(f"layer 2: 12+34=46   as the model reads it: {TOKENS}")
    for ax, h in zip(heads, (0, 2)):
        assert torch.allclose(torch.tensor(ax.images[0].get_array()), att[h], atol=1e-5)
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{t}\n{p}" for t, p in zip(TOKENS, POSITIONS)]
        assert ax.get_xlabel() == "attended token (block position)"
    assert heads[0].get_ylabel() == "query token" and len(heads[1].get_yticks()) == 0  # one shared row of labels
    assert [ax.get_ylabel() for ax in fig.axes if not ax.images] == ["attention weight"]
    (fig,) = made["layers_figure"]
    (ax,) = panels(fig)
    assert ax.get_title() == "layer 2 (mean of heads)"
    assert torch.allclose(torch.tensor(ax.images[0].get_array()), att[[0, 2]].mean(0), atol=1e-5)

    code, _, err = attention_cli(monkeypatch, capsys, "--model", model_dir, "--layers", "3")
    assert code == 2 and err == "error: --layers: the model has layers 1..2\n"
    code, _, err = attention_cli(monkeypatch, capsys, "1.5+2", "--model", model_dir)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "decimals" in err


def test_training_curves_show_every_evaluation(tiny_run):
    rows = [json.loads(line) for line in (tiny_run / "runs/default/metrics.jsonl").read_text().splitlines()]
    fig = plots.training_curves_figure(rows)
    plt.close(fig)
    assert len(fig.axes) == 4
    loss_by_step, acc_by_step, loss_by_time, acc_by_time = fig.axes
    assert fig.get_suptitle() == f"training: {len(rows)} evaluations, best {max(r['accuracy'] for r in rows):.2%}"
    for ax, x, label in ((loss_by_step, "step", "step"), (loss_by_time, "train_time_s", "training time (s)")):
        assert ax.get_xlabel() == label and ax.get_ylabel() == "answer-token loss" and ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "head 1 (t+1), held-out", "head 2 (t+2), held-out", "training batch, mean of heads"]
        head2, train = ax.lines[1], ax.lines[2]
        assert list(head2.get_xdata()) == [r[x] for r in rows]
        assert list(head2.get_ydata()) == [r["head_losses"][1] for r in rows]
        assert list(train.get_ydata()) == [r["train_loss"] for r in rows]
    for ax, x, label in ((acc_by_step, "step", "step"), (acc_by_time, "train_time_s", "training time (s)")):
        assert ax.get_xlabel() == label and ax.get_ylabel() == "held-out exact match (%)"
        greedy, head2 = ax.lines
        assert list(greedy.get_xdata()) == [r[x] for r in rows]
        assert list(greedy.get_ydata()) == pytest.approx([100 * r["accuracy"] for r in rows])
        assert list(head2.get_ydata()) == pytest.approx([100 * r["head_exact"][1] for r in rows])
    # What the trainer wrote from them.
    assert_png(tiny_run / "model/training_curves.png")
    assert (tiny_run / "runs/default/training_curves.png").read_bytes() == (tiny_run / "model/training_curves.png").read_bytes()


def test_accuracy_grid_shows_every_length_pair(tiny_run):
    ev = json.loads((tiny_run / "model/eval_results.json").read_text())
    # Base 10, operands 0..99: digit lengths 1 and 2 for each operand, a 2 x 2 grid.
    cells = {(c["digits_a"], c["digits_b"]): (c["correct"], c["total"]) for c in ev["by_length"]}
    assert sorted(cells) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert sum(t for _, t in cells.values()) == ev["total"] and sum(c for c, _ in cells.values()) == ev["correct"]
    fig = plots.accuracy_figure(cells, 10, "data (test split)")
    plt.close(fig)
    (ax,) = panels(fig)
    assert ax.images[0].get_array().tolist() == [[cells[(a, b)][0] / cells[(a, b)][1] for b in (1, 2)] for a in (1, 2)]
    assert [t.get_text() for t in ax.texts] == [f"{c / n:.1%}\n{n}" for c, n in (cells[k] for k in sorted(cells))]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"] == [t.get_text() for t in ax.get_yticklabels()]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("digits of b (base 10)", "digits of a (base 10)",
                                                                 "data (test split)")
    assert_png(tiny_run / "model/accuracy_by_length.png")
