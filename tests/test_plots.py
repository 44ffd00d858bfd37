import json

from PIL import Image

from conftest import run_script

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def test_attention_figures_one_panel_per_head(tiny_run, tmp_path):
    out = tmp_path / "att"
    proc = run_script("visualize_attention.py", "12+34", "--model", str(tiny_run / "model"), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("12+34=")
    # The tiny model: 2 layers of 4 heads, so 2 layer files and the summary.
    assert sorted(p.name for p in out.iterdir()) == ["all_layers.png", "layer_1_attention.png", "layer_2_attention.png"]
    w1, h1 = png_size(out / "layer_1_attention.png")
    assert w1 > 3 * h1  # four head panels side by side
    w_all, h_all = png_size(out / "all_layers.png")
    assert 1.5 * h_all < w_all < w1  # two layer panels
    # One head of one layer: a single panel, much narrower.
    proc = run_script("visualize_attention.py", "12+34", "--model", str(tiny_run / "model"), "--out", str(tmp_path / "one"),
                      "--layers", "2", "--heads", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    w, h = png_size(tmp_path / "one" / "layer_2_attention.png")
    assert w < 0.6 * w1


def test_attention_panels_and_bad_selections(tiny_run, tmp_path):
    import matplotlib.pyplot as plt

    from hexadd.loading import load_model
    from hexadd.plots import problem_attention

    model, tok = load_model(str(tiny_run / "model"))
    before = set(plt.get_fignums())
    shown, files = problem_attention(model, tok, 12, 34, tmp_path, layers=[0], heads=[0, 2])
    assert [f.name for f in files] == ["layer_1_attention.png", "all_layers.png"]
    assert set(plt.get_fignums()) == before  # figures are closed
    proc = run_script("visualize_attention.py", "--model", str(tiny_run / "model"), "--layers", "3", cwd=tmp_path)
    assert proc.returncode == 2 and "layers 1..2" in proc.stderr
    proc = run_script("visualize_attention.py", "1.5+2", "--model", str(tiny_run / "model"), cwd=tmp_path)
    assert proc.returncode == 2 and "decimals" in proc.stderr


def test_training_curves_and_accuracy_grid(tiny_run, tmp_path):
    curves = tiny_run / "model" / "training_curves.png"
    w, h = png_size(curves)
    assert w > h  # 2 x 2 panels, wider than tall
    assert (tiny_run / "runs/default/training_curves.png").is_file()
    grid = tiny_run / "model" / "accuracy_by_length.png"
    png_size(grid)
    ev = json.loads((tiny_run / "model" / "eval_results.json").read_text())
    # Base 10, operands 0..99: digit lengths 1 and 2 for each operand, a 2 x 2 grid.
    assert {(c["digits_a"], c["digits_b"]) for c in ev["by_length"]} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert sum(c["total"] for c in ev["by_length"]) == ev["total"]
    proc = run_script("inference.py", "--model", str(tiny_run / "model"), "--eval", str(tiny_run / "data"),
                      "--eval-dir", str(tmp_path / "ev"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    png_size(tmp_path / "ev" / "accuracy_by_length.png")
    assert json.loads((tmp_path / "ev" / "eval_results.json").read_text())["total"] == ev["total"]
