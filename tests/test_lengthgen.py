"""The length-generalization runner: config checks, and a tiny run end to end, continued after a stop."""
import json

import pytest
import yaml

from conftest import ROOT, run_main
from hexadd.config.files import load, to_dict
from hexadd.common.errors import ConfigError
from hexadd.experiments.lengthgen import LengthgenConfig, run, untrained_positions
from hexadd.data.numbers import encode_number

PRESET = ROOT / "configs/anylength.yaml"
# Trained on 1..2 hex digits, measured on 1..8 x 1..8: 2x, 3x and 4x are the cells 4+4, 6+6 and 8+8.
TINY = ["numbers.max_digits=2", "problems.count=3000", "model.n_embd=32", "model.n_layer=1", "model.n_head=2",
        "model.n_positions=10", "model.max_offset=6", "training.max_steps=40", "training.warmup_steps=10",
        "checks.eval_interval=20", "checks.fresh_eval=200", "checks.certify=0", "runtime.threads=2",
        "lengthgen.max_digits=8", "lengthgen.per_cell=8", "lengthgen.diagonal=16", "lengthgen.certify=300",
        "lengthgen.certify_range=[0,255]", "lengthgen.bands=3"]
BANDS = ((1, 2), (9, 12))  # the tiny run's bands: its trained lengths, and beyond


def test_preset_holds_only_differences_and_trains_every_position():
    cfg = load(LengthgenConfig, PRESET)
    assert cfg.trained == (1, 8) and cfg.lengthgen.max_digits == 32
    assert untrained_positions(cfg) is None
    defaults = to_dict(LengthgenConfig())  # the plain defaults (they do not fit the grid by themselves)
    for section, values in yaml.safe_load(PRESET.read_text()).items():
        for key, value in values.items():
            assert defaults[section][key] != value, f"{section}.{key} restates the default"
    assert untrained_positions(load(LengthgenConfig, PRESET, ["model.max_offset=10"])) is None  # no table
    note = untrained_positions(load(LengthgenConfig, PRESET, ["model.max_offset=10", "model.positions=block",
                                                             "lengthgen.bands=0"]))
    assert "positions 20..33" in note and "max_offset >= 24" in note


@pytest.mark.parametrize("override,key", [("model.window=0", "model.window: must be >= 1"),
                                          ("lengthgen.certify_range=[5,1]", "lengthgen.certify_range: must be"),
                                          ("lengthgen.certify_range=[0,x]", r"lengthgen.certify_range\[1\]: must be int"),
                                          ("lengthgen.max_digits=6", "lengthgen.max_digits"),
                                          ("lengthgen.per_cell=0", "lengthgen.per_cell"),
                                          ("tokenizer.vocab_size=40", "tokenizer: unknown key"),
                                          ("output.model_dir=x", "output: unknown key")])
def test_config_errors(override, key):
    with pytest.raises(ConfigError, match=key):
        load(LengthgenConfig, PRESET, [override])


def classify(text: str, right: str, longer: int) -> int:
    """0 right, 1 wrong digit, 2 stopped early, 3 wrong at the end: where decoding first leaves the right answer."""
    d = next((k for k in range(len(right)) if k >= len(text) or text[k] != right[k]), None)
    return 0 if d is None else 3 if d >= longer else 2 if d < len(text) and text[d] == "+" else 1


def test_tiny_run_end_to_end_and_continued(tmp_path, monkeypatch):
    from hexadd.inference.decoding import decode
    from hexadd.data.encoding import digits_to_int
    from hexadd.verify.grids import cell_operands
    from hexadd.inference.loading import load_model

    import hexadd.verify.bands
    monkeypatch.setattr(hexadd.verify.bands, "BANDS", BANDS)
    root = tmp_path / "lg"
    cfg = load(LengthgenConfig, PRESET, [*TINY, f"lengthgen.dir={root}"])
    lines = []
    results = run(cfg, log=lines.append)
    saved = json.loads((root / "results.json").read_text())
    assert saved["trained_digits"] == [1, 2] and saved["max_digits"] == 8
    cells = {(c["digits_a"], c["digits_b"]): c for c in saved["grid"]}
    assert set(cells) == {(i, j) for i in range(1, 9) for j in range(1, 9)}
    assert all(c["total"] == (16 if i == j else 8) for (i, j), c in cells.items())
    assert all(c["correct"] + c["wrong_digit"] + c["stopped_early"] + c["wrong_end"] == c["total"] for c in cells.values())
    assert [(m["factor"], m["digits"], m["total"]) for m in saved["multiples"]] == [(2, 4, 16), (3, 6, 16), (4, 8, 16)]
    assert saved["in_range"]["total"] == 16 * 2 + 8 * 2
    assert saved["in_range"]["correct"] == sum(cells[(i, j)]["correct"] for i in (1, 2) for j in (1, 2))
    assert set(saved["seconds"]) == {"data", "tokenizer", "training", "grid", "certificate", "bands", "total"}
    # The certificate of another range and the bands are in the model folder, with the weights they measured.
    cert = json.loads((root / "model" / "certificate.json").read_text())
    assert (cert["n"], cert["min_operand"], cert["max_operand"]) == (300, 0, 255) and "search" in cert
    assert saved["certificate"]["n"] == 300 and saved["certificate"]["wrong"] == cert["wrong"]
    bands = json.loads((root / "model" / "bands.json").read_text())
    assert [(r["band"], r["family"], r["n"]) for r in bands["bands"]] == [
        (list(b), f, 12 if f == "all" else 3) for b in BANDS for f in (*hexadd.verify.bands.FAMILIES, "all")]
    assert bands["locality"]["max_abs_logit_difference"] == 0.0 and saved["bands"]["per_family"] == 3
    assert any(line.startswith("  bands (fresh problems, 4 families): 1..2:") for line in lines)
    assert saved["training"]["steps"] == 40 and saved["config"]["model"]["offset_per"] == "sample"
    assert (root / "accuracy_by_length.png").stat().st_size > 10_000
    assert any(line.startswith("  4x the trained length, 8+8 digits:") for line in lines)

    # A normal model folder, and the grid's teacher-forced verdicts are what greedy decoding writes, problem by problem.
    model, tok = load_model(str(root / "model"))
    assert (model.config.max_operand, model.config.max_offset, model.config.offset_per) == (255, 6, "sample")
    for i, j in ((2, 1), (5, 3), (8, 8)):
        c = cells[(i, j)]
        da, _, db, _ = cell_operands(i, j, c["total"], 16, 0)
        pairs = [(digits_to_int(x, 16), digits_to_int(y, 16)) for x, y in zip(da.tolist(), db.tolist())]
        kinds = [0, 0, 0, 0]
        for (a, b), answer in zip(pairs, decode(model, tok, pairs, "single")):
            kinds[classify(answer.text, encode_number(a + b, 16) + "+", max(i, j))] += 1
        assert kinds == [c["correct"], c["wrong_digit"], c["stopped_early"], c["wrong_end"]], (i, j)
    # inference.py answers beyond the trained range, as decoding does here: a block-window model declares none.
    proc = run_main("inference.py", "--model", str(root / "model"), "268435455+1", cwd=tmp_path)
    value = decode(model, tok, [(268435455, 1)], "verified")[0].value
    assert proc.returncode == 0 and proc.stdout == f"268435455+1={'?' if value is None else value}\n", proc.stderr
    assert "outside the trained operands" not in proc.stderr

    # Stopped after training but before training.json, and halfway through the grid: the same command continues.
    (root / "training.json").unlink()
    grid = json.loads((root / "grid_cells.json").read_text())
    grid["cells"] = grid["cells"][:30]
    (root / "grid_cells.json").write_text(json.dumps(grid))
    lines.clear()
    again = run(cfg, log=lines.append)
    assert "resumed from step 40" in lines and "grid: 30 cells measured before, continuing" in lines
    assert not any(line.startswith("certificate:") for line in lines)  # measured on these weights already
    assert again["grid"] == results["grid"] and json.loads((root / "training.json").read_text())["resumed"]

    # A different model or different data is refused, naming the key, before any work.
    with pytest.raises(ConfigError, match="model.n_embd is 64 .* remove"):
        run(load(LengthgenConfig, PRESET, [*TINY, f"lengthgen.dir={root}", "model.n_embd=64"]), log=lines.append)
    with pytest.raises(ConfigError, match="problems.count: .* other data"):
        run(load(LengthgenConfig, PRESET, [*TINY, f"lengthgen.dir={root}", "problems.count=4000"]), log=lines.append)
