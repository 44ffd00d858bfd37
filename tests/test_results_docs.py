"""docs/results.md and the README's results block are what bench/results_tables.py makes from bench/results/."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def generator():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "bench" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tables_are_the_generated_ones():
    gen = generator()
    docs, block = gen.build(ROOT)
    assert (ROOT / "docs" / "results.md").read_text() == docs, "docs/results.md is stale: run `make results`"
    readme = (ROOT / "README.md").read_text()
    assert gen.readme_with(block, readme) == readme, "the README's results block is stale: run `make results`"


def test_every_results_file_records_its_provenance():
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        d = json.loads(path.read_text())
        missing = [k for k in ("command", "commit", "date", "machine", "config") if not d.get(k)]
        assert not missing, f"{path.name}: no {', '.join(missing)}"


@pytest.fixture
def tree(tmp_path):
    """A copy of what the generator reads: README, train_config.yaml and the results files."""
    (tmp_path / "bench").mkdir()
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copy(ROOT / "train_config.yaml", tmp_path / "train_config.yaml")
    return tmp_path


def test_a_changed_number_changes_the_tables(tree):
    gen = generator()
    before = gen.build(tree)
    path = tree / "bench" / "results" / "certify-all-default-seed0.json"
    d = json.loads(path.read_text())
    d["certificate"]["wrong"] += 1
    path.write_text(json.dumps(d))
    after = gen.build(tree)
    assert after[0] != before[0] and after[1] != before[1]
    assert f"{d['certificate']['wrong']:,} wrong of 10^8" in after[1]


def test_new_files_show_up_without_code(tree):
    gen = generator()
    results = tree / "bench" / "results"
    flagship = json.loads((results / "anylength-heads2-seed0.json").read_text())
    flagship["commit"] = "0123456"
    (results / "anylength-heads2-seed9.json").write_text(json.dumps(flagship))
    (results / "demo-unknown.json").write_text(json.dumps({"command": "x", "commit": "abc", "date": "d", "machine": "m",
                                                          "config": {}, "something": 1}))
    # bench/certify_all.py --bands on the flagship: a certificate and bands, no grid
    bands = {k: flagship[k] for k in ("command", "commit", "date", "machine", "config", "bands")}
    bands.update(model="runs/anylength/model", certificate=flagship["certificate"])
    (results / "anylength-heads2-seed0-bands10k.json").write_text(json.dumps(bands))
    (results / "decode_speed-new.json").write_text(json.dumps({"command": "x", "commit": "abc", "date": "d",
                                                               "machine": "m", "config": {}, "modes": {"single": {}}}))
    docs, _ = gen.build(tree)
    assert "[anylength-heads2-seed9.json](../bench/results/anylength-heads2-seed9.json) @ `0123456`" in docs
    assert "**anylength-heads2-seed0-bands10k.json**" in docs.split("### Bands of lengths", 1)[1]
    other = docs.split("## Other files", 1)[1]
    assert "demo-unknown.json" in other and "anylength-heads2-seed9.json" not in other
    assert "decode_speed-new.json): of a known kind, but its table could not read it (KeyError" in other
