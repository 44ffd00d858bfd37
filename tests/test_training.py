import json

import torch

from conftest import ROOT, TINY_DATA, assert_one_line_error, run_script, sets
from hexadd.loading import load_model
from hexadd.splits import Batches, evaluate, length_pair_weights, load_splits


def test_tiny_model_learns_held_out_addition(tiny_run):
    """Trained on base-10 operands 0..99 for a fixed seed: most held-out problems come out right."""
    metrics = [json.loads(line) for line in (tiny_run / "runs/default/metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["accuracy"] >= 0.95, metrics[-1]
    model, tok = load_model(str(tiny_run / "model"))
    _, held = load_splits(tok, tiny_run / "data")
    ev = evaluate(model, held)
    assert ev["accuracy"] >= 0.95
    assert (tiny_run / "model/tokenizer.json").is_file() and (tiny_run / "model/metrics.jsonl").is_file()
    assert (tiny_run / "runs/default/config.yaml").is_file()


def test_start_up_checks(tmp_path):
    cfg = ["--config", str(ROOT / "train_config.yaml")]
    proc = run_script("trainer.py", *cfg, cwd=tmp_path)
    assert_one_line_error(proc, "data/README.md not found: run data_generator.py first")
    assert run_script("data_generator.py", "--config", str(ROOT / "data_config.yaml"), *sets(*TINY_DATA), cwd=tmp_path).returncode == 0
    proc = run_script("trainer.py", *cfg, cwd=tmp_path)
    assert_one_line_error(proc, "tokenizer.json not found")
    assert run_script("tokenizer.py", *cfg, cwd=tmp_path).returncode == 0
    proc = run_script("trainer.py", *cfg, *sets("model.n_positions=3"), cwd=tmp_path)
    assert_one_line_error(proc, "model.n_positions: 3 cannot hold the longest number", "need at least 4")
    proc = run_script("trainer.py", *cfg, *sets("model.positions=learned", "model.n_positions=8"), cwd=tmp_path)
    assert_one_line_error(proc, "model.n_positions: 8 cannot hold the longest sequence")
    test = tmp_path / "data/test.parquet"
    test.write_bytes(test.read_bytes()[:-100])  # a truncated download or copy
    proc = run_script("trainer.py", *cfg, cwd=tmp_path)
    assert_one_line_error(proc, "a Parquet file could not be read", "run data_generator.py again")


def test_tokenizer_without_digit_tokens_is_rejected(tmp_path):
    cfg = ["--config", str(ROOT / "train_config.yaml")]
    assert run_script("data_generator.py", "--config", str(ROOT / "data_config.yaml"), *sets(*TINY_DATA), cwd=tmp_path).returncode == 0
    assert run_script("tokenizer.py", *cfg, cwd=tmp_path).returncode == 0
    tj = json.loads((tmp_path / "tokenizer/tokenizer.json").read_text())
    del tj["model"]["vocab"]["7"]
    tj["model"]["vocab"] = {k: i for i, k in enumerate(tj["model"]["vocab"])}
    (tmp_path / "tokenizer/tokenizer.json").write_text(json.dumps(tj))
    proc = run_script("trainer.py", *cfg, cwd=tmp_path)
    assert_one_line_error(proc, "missing digit tokens 7")


def test_length_pairs_are_drawn_equally_often():
    # Base 16: 16 one-digit + one-digit problems against 984 with a three-digit operand.
    operands = torch.tensor([(a, b) for a in range(16) for b in (1, 2, 3, 4)] +
                            [(a, b) for a in range(256, 1240) for b in (7,)])
    w = length_pair_weights(1 + (operands >= 16).long() + (operands >= 256).long())  # digit counts
    short = (operands < 16).all(1)
    assert torch.isclose(w[short].sum(), w[~short].sum()) and len(set(w[short].tolist())) == 1

    batches = Batches(len(operands), 50, seed=1, weights=w)
    drawn = torch.cat([batches(s) for s in range(200)])
    assert 0.45 < short[drawn].float().mean() < 0.55  # 6% of the rows, half of what is drawn
    assert torch.equal(Batches(len(operands), 50, seed=1, weights=w)(150), batches(150))  # fixed by (seed, step)


def test_unweighted_batches_are_an_epoch_permutation():
    batches = Batches(1000, 64, seed=3)
    epoch = torch.cat([batches(s) for s in range(batches.per_epoch)])
    assert len(set(epoch.tolist())) == len(epoch) == 15 * 64
    assert torch.equal(Batches(1000, 64, seed=3)(20), batches(20))
