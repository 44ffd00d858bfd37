"""The ablation runner: a tiny two-row table end to end and resumed, the table's cells, bad row files."""
import json
import statistics
import sys

import pytest

from conftest import ROOT, TINY_DATA, assert_one_line_error, run_script
from launch import Launched
from hexadd.experiments.reports import markdown, summarize
from hexadd.common.errors import ConfigError
from hexadd.inference.decoding import decode
from hexadd.inference.loading import load_model
from hexadd.verify.certify import operand_chunks

sys.path.insert(0, str(ROOT / "bench"))
import ablations  # noqa: E402  (bench/ablations.py)

TINY = [f"data.{o}" for o in TINY_DATA] + ["data.problems.held_out_fraction=0.02"] + [  # less to decode at the end
    f"train.{o}" for o in ("model.n_embd=64", "model.n_layer=2", "model.n_positions=16", "training.batch_size=64",
                           "training.max_steps=40", "checks.eval_interval=20", "runtime.threads=1")]


def args(tmp_path, rows, *extra):
    out = tmp_path / "out"
    return ["--row-folder", str(rows), "--out", str(out), "--results", str(out / "results.json"), "--docs",
            str(out / "docs"), "--data-config", str(ROOT / "data_config.yaml"), "--train-config",
            str(ROOT / "train_config.yaml"), *[a for o in TINY for a in ("--set", o)], *extra]


def test_tiny_table_is_written_and_resumed(tmp_path, capsys, monkeypatch):
    # Each row's trainer in a process forked from the preloaded Python (tests/launch.py), not a new one; the
    # runner's own launch, a new Python with its output in the row's log, is checked at the end.
    launch_trainer = ablations.launch_trainer
    monkeypatch.setattr(ablations, "launch_trainer", lambda config, folder, log: Launched(
        "trainer.py", ["--config", str(config)], folder, log=log))
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "heads-1.yaml").write_text("label: one prediction head\nclaim: two heads decode in fewer passes\n"
                                       "train:\n  model:\n    n_predict: 1\n")
    argv = args(tmp_path, rows, "--seeds", "0", "--budget", "600", "--certify", "300",
                "--decode-sample", "200")
    ablations.main(argv)
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    runs = {r["row"]: r for r in results["runs"]}
    assert sorted(runs) == ["baseline", "heads-1"] and results["machine"]["cores"] >= 1
    for r in runs.values():
        assert r["outcome"] == "schedule end" and r["steps"] == 40 and r["held_out_step"] == 40
        assert 9 <= r["tokens_per_problem"] <= 11  # `+A+B+C+`: mostly two-digit operands in 0..99, base 10
        assert r["samples_per_s"] > 0
        assert (out / "rows" / r["row"] / "seed0/model/certificate.json").is_file()
        # The certificate's count is what greedy decoding gets wrong on its 300 problems (seed 0, one chunk).
        model, tok = load_model(str(out / "rows" / r["row"] / "seed0/model"))
        a, b = next(operand_chunks(model.config.min_operand, model.config.max_operand, 300, 0, 4096))
        decoded = decode(model, tok, list(zip(a.tolist(), b.tolist())), "single")
        assert r["certificate"]["n"] == 300 and r["certificate"]["wrong"] == sum(x.value != x.a + x.b for x in decoded)
        # Passes are counted on the 200 problems of seed 1 in the row's own mode; verifying drafts never takes
        # more passes than plain greedy decoding of the same model.
        a, b = next(operand_chunks(model.config.min_operand, model.config.max_operand, 200, 1, 200))
        pairs = list(zip(a.tolist(), b.tolist()))
        own = statistics.fmean(x.passes for x in decode(model, tok, pairs, r["decode_mode"]))
        single = statistics.fmean(x.passes for x in decode(model, tok, pairs, "single"))
        assert r["passes_per_answer"] == pytest.approx(own) and 1 <= own <= single
    assert runs["baseline"]["decode_mode"] == "verified" and runs["heads-1"]["decode_mode"] == "single"
    # Both rows share one data folder and one tokenizer.
    assert len(list((out / "data").iterdir())) == 1 and len(list((out / "tokenizers").iterdir())) == 1

    table = [line for line in (out / "docs/ablations.md").read_text().splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == ["baseline", "heads-1"]
    assert "one prediction head | two heads decode in fewer passes | schedule ended at step 40" in table[1]
    assert f"wrong {runs['heads-1']['certificate']['wrong']:,} of 300" in table[1]
    assert (out / "docs/ablations.png").stat().st_size > 0

    # Run again: every run is already there, nothing is trained again.
    capsys.readouterr()
    ablations.main(argv)
    assert "0 to go" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]

    (tmp_path / "bad.yaml").write_text("training: {max_steps: 0}\n")
    proc = launch_trainer(tmp_path / "bad.yaml", tmp_path, tmp_path / "trainer.log")
    assert proc.wait(timeout=120) == 2
    assert (tmp_path / "trainer.log").read_text().startswith("error: training.max_steps")


def test_table_cells():
    def run(seed, outcome, wrong, **kw):
        return {"row": kw.pop("row"), "seed": seed, "fingerprint": "f", "outcome": outcome, "budget_s": 150.0,
                "certificate": {"n": 1000, "wrong": wrong}, "tokens_per_problem": 15.0, "passes_per_answer": 3.0,
                "decode_mode": "verified", "samples_per_s": 1000.0 + seed, **kw}
    results = {
        "machine": {"cpu": "a CPU", "cores": 2, "torch": "2.13.0", "date": "2026-11-27"},
        "settings": {"row_folder": "configs/ablations", "set": [], "decode_sample": 2000, "results": "r.json"},
        "rows": {name: {"label": name, "claim": "c", "fingerprint": "f"} for name in ("baseline", "slow", "gone")},
        "runs": [run(s, "stopping rule", 0, row="baseline", time_s=t, steps=2000) for s, t in ((0, 100), (1, 130), (2, 110))]
        + [run(0, "budget", 3, row="slow", steps=1043, held_out_accuracy=0.981, load_1min=6.2),
           run(1, "budget", 1, row="slow", steps=990, held_out_accuracy=0.97),
           run(2, "stopping rule", 0, row="slow", time_s=140, steps=1200),
           {**run(0, "stopping rule", 0, row="gone", time_s=1, steps=1), "fingerprint": "old"}],  # another definition
    }
    rows = summarize(results)
    assert [s["row"] for s in rows] == ["baseline", "slow"]
    assert rows[0]["median_stop_s"] == 110 and rows[1]["median_stop_s"] is None
    assert rows[1]["wrong"] == 4 and rows[1]["n"] == 3000 and rows[1]["samples_per_s"] == 1001
    table = markdown(results)
    assert "**110 s** (median; 100 / 130 / 110 s)" in table
    assert "stopped by its rule at 140 s (seed 2); budget (150 s) hit at step 1,043 / 990, held-out 98.10 / 97.00% (seeds 0, 1)" in table
    assert "0 (≤ 0.001); wrong 0 / 0 / 0 of 1,000" in table  # 3,000 problems, none wrong: the bound is ~3/3000
    assert "0.0013 (≤ 0.003); wrong 3 / 1 / 0 of 1,000" in table
    assert "load average up to 6.2 on 2 cores" in table  # a run made while other work had the CPU is flagged
    results["runs"][3]["load_1min"] = 2.1
    assert "load average" not in markdown(results)


def test_bad_row_file_is_one_line_naming_it(tmp_path):
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "ok.yaml").write_text("label: fine\ntrain:\n  model: {positions: learned}\n")
    (rows / "typo.yaml").write_text("label: typo\ntrain:\n  model:\n    position: learned\n")
    proc = run_script("bench/ablations.py", *args(tmp_path, rows), cwd=tmp_path)
    assert_one_line_error(proc, "typo.yaml: train.model.position: unknown key")
    assert not (tmp_path / "out").exists()  # refused before anything ran
    for text, fragment in (("data:\n  numbers: {base: ten}\n", "data.numbers.base: must be int"),
                           ("train:\n  output: {model_dir: x}\n", "train.output: set by the ablation runner"),
                           ("data:\n  numbers: {max_operand: 50}\n", "data.numbers.max_operand: the same in every row"),
                           ("labl: x\n", "labl: unknown key"),
                           ("label: [x\n", "not valid YAML"),
                           ("data:\n  numbers: {base: 2}\ntrain:\n  model: {positions: learned}\n",
                            "train.model.n_positions: 32 cannot hold the longest problem")):
        (rows / "typo.yaml").write_text(text)
        with pytest.raises(ConfigError, match=f"typo.yaml: .*{fragment}"):
            ablations.main(args(tmp_path, rows)[:-2 * len(TINY)])  # the full-size defaults: base 2 needs 47 positions
    with pytest.raises(ConfigError, match="--set 'train.training.seed=3': set by the ablation runner"):
        ablations.main(args(tmp_path, rows, "--set", "train.training.seed=3"))
