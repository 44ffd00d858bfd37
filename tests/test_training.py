import json

import pytest
import torch

from conftest import ROOT, TINY_DATA, assert_one_line_error, run_main, sets
from hexadd.config.schema import TrainConfig
from hexadd.config.files import load
from hexadd.inference.loading import load_model
from hexadd.data.splits import Batches, length_pair_weights, load_splits
from hexadd.verify.verdicts import split_accuracy


def test_tiny_model_learns_held_out_addition(tiny_run):
    """Trained on base-10 operands 0..99 for a fixed seed: most held-out problems come out right."""
    metrics = [json.loads(line) for line in (tiny_run / "runs/default/metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["accuracy"] >= 0.95, metrics[-1]
    model, tok = load_model(str(tiny_run / "model"))
    _, held = load_splits(tok, tiny_run / "data")
    ev = split_accuracy(model, held)
    assert ev["accuracy"] >= 0.95
    assert (tiny_run / "model/tokenizer.json").is_file() and (tiny_run / "model/metrics.jsonl").is_file()
    assert (tiny_run / "runs/default/config.yaml").is_file()


def test_start_up_checks(tmp_path):
    cfg = ["--config", str(ROOT / "train_config.yaml")]
    proc = run_main("trainer.py", *cfg, cwd=tmp_path)
    assert_one_line_error(proc, "data/README.md not found: run data_generator.py first")
    assert run_main("data_generator.py", "--config", str(ROOT / "data_config.yaml"), *sets(*TINY_DATA), cwd=tmp_path).returncode == 0
    proc = run_main("trainer.py", *cfg, cwd=tmp_path)
    assert_one_line_error(proc, "tokenizer.json not found")
    assert run_main("tokenizer.py", *cfg, cwd=tmp_path).returncode == 0
    proc = run_main("trainer.py", *cfg, *sets("model.n_positions=3"), cwd=tmp_path)
    assert_one_line_error(proc, "model.n_positions: 3 cannot hold the longest number", "need at least 4")
    proc = run_main("trainer.py", *cfg, *sets("model.positions=learned", "model.n_positions=8"), cwd=tmp_path)
    assert_one_line_error(proc, "model.n_positions: 8 cannot hold the longest sequence")
    test = tmp_path / "data/test.parquet"
    test.write_bytes(test.read_bytes()[:-100])  # a truncated download or copy
    proc = run_main("trainer.py", *cfg, cwd=tmp_path)
    assert_one_line_error(proc, "a Parquet file could not be read", "run data_generator.py again")


def test_tokenizer_without_digit_tokens_is_rejected(tmp_path):
    cfg = ["--config", str(ROOT / "train_config.yaml")]
    assert run_main("data_generator.py", "--config", str(ROOT / "data_config.yaml"), *sets(*TINY_DATA), cwd=tmp_path).returncode == 0
    assert run_main("tokenizer.py", *cfg, cwd=tmp_path).returncode == 0
    tj = json.loads((tmp_path / "tokenizer/tokenizer.json").read_text())
    del tj["model"]["vocab"]["7"]
    tj["model"]["vocab"] = {k: i for i, k in enumerate(tj["model"]["vocab"])}
    (tmp_path / "tokenizer/tokenizer.json").write_text(json.dumps(tj))
    proc = run_main("trainer.py", *cfg, cwd=tmp_path)
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


def draw(lo, hi, n, base, shares, seed=7):
    from hexadd.data.samplers import family_pairs
    return family_pairs(lo, hi, n, base, shares, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("base, lo, hi", [(16, 0, 9999), (10, 0, 9999), (16, 1000, 65535)])
def test_carry_family_has_digits_summing_to_base_minus_one(base, lo, hi):
    """The carry family puts digit pairs summing to base - 1 (where a carry goes through or does not) into
    nearly every problem, with a carry arriving there in about a third of them; it stays in range and leaves the
    uniform part as it was."""
    from hexadd.data.encoding import add_digits, int64_digits

    def through(pairs):  # problems with a digit pair summing to base - 1, and with a carry arriving there
        da, db = (int64_digits(pairs[:, i], base, 5)[0] for i in (0, 1))
        carry_in = torch.nn.functional.pad(add_digits(da, db, base)[2][:, :4], (1, 0))
        run = da + db == base - 1
        return run.any(dim=1).float().mean().item(), (run & (carry_in == 1)).any(dim=1).float().mean().item()

    uniform = draw(lo, hi, 20_000, base, {})
    mixed = draw(lo, hi, 20_000, base, {"carry": 0.5})
    assert torch.equal(mixed[10_000:], uniform[10_000:]) and torch.equal(mixed[:, 0], uniform[:, 0])
    assert mixed.min() >= lo and mixed.max() <= hi
    (runs_u, carried_u), (runs_m, carried_m) = through(uniform), through(mixed[:10_000])
    assert runs_u < 0.35 and carried_u < 0.15
    assert runs_m > 0.95 and 0.2 < carried_m / runs_m < 0.6


@pytest.mark.parametrize("base, lo, hi", [(16, 0, 9999), (10, 0, 9999), (16, 1000, 65535)])
def test_sums_family_has_every_digit_sum_equally_often(base, lo, hi):
    """Below both leading digits every column sum 0..2(base - 1) comes up about equally often, where uniform
    digits make the extremes (F+F) 16 times rarer than a middle sum; lengths and range stay, the rest as it was."""
    from hexadd.data.encoding import int64_digits

    n = 40_000
    uniform = draw(lo, hi, n, base, {"carry": 0.25})
    mixed = draw(lo, hi, n, base, {"carry": 0.25, "sums": 0.5})
    assert torch.equal(mixed[:n // 4], uniform[:n // 4]) and torch.equal(mixed[3 * n // 4:], uniform[3 * n // 4:])
    assert mixed.min() >= lo and mixed.max() <= hi
    part = mixed[n // 4:3 * n // 4]
    width = 5
    (da, la), (db, lb) = int64_digits(part[:, 0], base, width), int64_digits(part[:, 1], base, width)
    old = uniform[n // 4:3 * n // 4]
    assert torch.equal(la, int64_digits(old[:, 0], base, width)[1]) and torch.equal(lb, int64_digits(old[:, 1], base, width)[1])
    lsd = (da + db)[:, 0][torch.minimum(la, lb) > 1]                    # redrawn columns only
    counts = torch.bincount(lsd, minlength=2 * base - 1).float()
    assert len(lsd) > 0.9 * len(part) and counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()
    ua, ub = int64_digits(old[:, 0], base, width)[0], int64_digits(old[:, 1], base, width)[0]
    before = torch.bincount((ua + ub)[:, 0][torch.minimum(la, lb) > 1], minlength=2 * base - 1).float()
    assert before[-1] < 0.2 * before.mean()  # the same columns drawn uniformly: F+F is rare


def test_sample_streams_are_apart_from_each_other_and_from_the_certificate():
    """torch seeds its generator with a seed's low 32 bits only: streams far apart above them would draw the same."""
    from hexadd.common import rng
    from hexadd.data.samplers import family_pairs
    from hexadd.verify.certify import operand_chunks

    streams = (rng.FRESH, rng.GATE, rng.TRAIN, rng.TRAIN + rng.TRAIN_KIND, rng.TRAIN + 2 * rng.TRAIN_KIND)
    for seed, step in ((0, 0), (2, 100)):
        samples = [family_pairs(0, 9999, 512, 16, {}, rng.generator(seed, s, step)) for s in streams]
        a, b = next(operand_chunks(0, 9999, 512 * (step + 1), seed, 512))  # its chunk 0
        sets = [set(map(tuple, p.tolist())) for p in samples] + [set(zip(a.tolist(), b.tolist()))]
        assert all(len(sets[i] & sets[j]) == 0 for i in range(len(sets)) for j in range(i + 1, len(sets)))
        assert not any(torch.equal(samples[0][:, 0], x) for x in [s[:, 0] for s in samples[1:]] + [a])


def test_gate_stops_only_on_a_sample_without_error_and_replays_the_wrong(monkeypatch):
    """The gate stops only when no fresh problem is wrong; its wrong problems join the replay (when the mixture
    replays), and its line counts them."""
    import types

    import hexadd.train.monitor as monitor
    from hexadd.train.mixture import Replay

    right = torch.tensor([True, True, False, False])
    seen = []
    monkeypatch.setattr(monitor, "pair_verdicts", lambda model, tok, enc, pairs, autocast=None: (seen.append(pairs) or right, None))
    run = types.SimpleNamespace(model=types.SimpleNamespace(config=types.SimpleNamespace(min_operand=0, max_operand=99, base=10)),
                                tok=None, encoder=None, autocast=lambda: None,
                                accelerator=types.SimpleNamespace(process_index=0, num_processes=1))
    cfg = types.SimpleNamespace(checks=types.SimpleNamespace(stop_gate=4, families={}),
                                training=types.SimpleNamespace(seed=0, mixture={"replay": 0.1}))
    replay, lines = Replay(), []
    assert monitor.gate(run, replay, 100, cfg, lines.append) is False
    assert replay.pairs.tolist() == seen[0][2:].tolist()
    assert lines == ["step 100: stopping gate, 2 wrong of 4 fresh problems"]
    right = torch.tensor([True, True, True, True])
    assert monitor.gate(run, replay, 200, cfg, lines.append) is True
    assert lines[-1] == "step 200: stopping gate, 0 wrong of 4 fresh problems; stopping" and len(replay) == 2
    assert not torch.equal(seen[0], seen[1])  # a fresh sample at every gate
    cfg.training.mixture = {"replay": 0.0}
    right = torch.tensor([False, True, True, True])
    assert monitor.gate(run, replay, 300, cfg, lines.append) is False and len(replay) == 2  # no replay: nothing kept


def test_row_kinds_follow_training_rows_in_each_batch(tiny_run, tmp_path, torch_threads):
    """A batch is training rows, then each row kind's share in KINDS' order (replayed errors, then rows drawn anew
    by family): fixed by (seed, step), new at every step, apart from the fresh checks, and uniform rows uniform."""
    from hexadd.common import rng
    from hexadd.data.samplers import family_pairs
    from hexadd.train.loop import batch_tensors
    from hexadd.train.mixture import Replay
    from hexadd.train.prepare import prepare

    cfg = tracked_config(tiny_run, tmp_path)
    t = cfg.training
    t.mixture = {"replay": 0.25, "carry": 0.25}
    run = prepare(cfg, log=lambda *_: None)
    replay = Replay()
    replay.add(torch.tensor([[12, 34]]))

    def operands(ids, mask):  # "+21+43+55+" (base 10, reversed) -> (12, 34)
        rows = [run.tok.decode(r[m.bool()]).replace(" ", "").strip("+").split("+") for r, m in zip(ids, mask)]
        return torch.tensor([[int(a[::-1]), int(b[::-1])] for a, b, _ in rows])

    ids, mask, labels = batch_tensors(run, replay, 5, t)
    pairs = operands(ids, mask)
    assert len(pairs) == t.batch_size == 32
    assert (pairs[16:24] == torch.tensor([12, 34])).all() and not (pairs[:16] == torch.tensor([12, 34])).all(1).all()
    carry = pairs[24:]
    sums = (carry[:, :1] // 10 ** torch.arange(2) % 10) + (carry[:, 1:] // 10 ** torch.arange(2) % 10)
    assert (sums == 9).any(dim=1).all(), carry  # uniform pairs would have such a digit pair in a fifth of rows
    again = batch_tensors(run, replay, 5, t)
    assert all(torch.equal(x, y) for x, y in zip((ids, mask, labels), again))
    assert not torch.equal(operands(*batch_tensors(run, replay, 6, t)[:2])[24:], carry)
    fresh = family_pairs(0, 99, 8, 10, {"carry": 1.0}, rng.generator(t.seed, rng.FRESH, 5))
    assert not torch.equal(fresh, carry)
    # Every kind: training rows, replay, uniform, carry runs, column sums, each from its own sub-stream.
    t.mixture = {"replay": 0.125, "uniform": 0.25, "carry": 0.125, "sums": 0.125}
    mixed = operands(*batch_tensors(run, replay, 5, t)[:2])
    kind = [family_pairs(0, 99, k, 10, shares, rng.generator(t.seed, rng.TRAIN + i * rng.TRAIN_KIND, 5))
            for i, (k, shares) in enumerate([(8, {}), (4, {"carry": 1.0}), (4, {"sums": 1.0})])]
    assert len(mixed) == 32 and (mixed[12:16] == torch.tensor([12, 34])).all()
    assert torch.equal(mixed[16:], torch.cat(kind))
    # Uniform rows are uniform: over 200 steps, each tens digit of either operand about equally often.
    t.mixture = {"uniform": 0.5}
    drawn = torch.cat([operands(*batch_tensors(run, Replay(), s, t)[:2])[16:] for s in range(200)])
    counts = torch.bincount((drawn // 10).flatten(), minlength=10).float()
    assert len(drawn) == 3200 and counts.min() > 0.85 * counts.mean() and counts.max() < 1.15 * counts.mean()
    assert abs(drawn.float().mean().item() - 49.5) < 1.5


def test_unweighted_batches_are_an_epoch_permutation():
    batches = Batches(1000, 64, seed=3)
    epoch = torch.cat([batches(s) for s in range(batches.per_epoch)])
    assert len(set(epoch.tolist())) == len(epoch) == 15 * 64
    assert torch.equal(Batches(1000, 64, seed=3)(20), batches(20))


# A short in-process run on the tiny fixture's data: evaluations every 5 steps, checkpoints every 10.
TRACKED = ["model.n_embd=32", "model.n_layer=1", "model.n_head=2", "model.n_positions=16", "training.batch_size=32",
           "training.max_steps=30", "checks.eval_interval=5", "runtime.checkpoint_interval=10",
           "checks.early_stop=false", "checks.fresh_eval=500", "checks.certify=0", "runtime.threads=1",
           "runtime.log_with=tensorboard"]


def tracked_config(tiny_run, out):
    return load(TrainConfig, ROOT / "train_config.yaml", [
        f"data.dir={tiny_run / 'data'}", f"tokenizer.dir={tiny_run / 'tokenizer'}", f"output.model_dir={out / 'model'}",
        f"output.run_dir={out / 'run'}", *TRACKED])


@pytest.fixture
def torch_threads():
    """A run in this process sets torch's thread count (one thread: a busy machine slows two by 4x); put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_tensorboard_holds_each_evaluation_once_across_a_crash_and_resume(tiny_run, tmp_path, monkeypatch,
                                                                           torch_threads):
    """A run dies at step 17 (its checkpoint is at 10, its last evaluation at 15); the resumed run logs 15 again.
    TensorBoard's event files then hold each evaluation step once, with the accuracy metrics.jsonl holds."""
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hexadd.train import loop as training
    cfg = tracked_config(tiny_run, tmp_path)
    real_step, calls = training.train_step, []

    def dies_at_17(*args, **kwargs):
        calls.append(1)
        if len(calls) == 17:
            raise RuntimeError("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", dies_at_17)
    with pytest.raises(RuntimeError, match="killed"):
        training.train(cfg, log=lambda *_: None)
    monkeypatch.setattr(training, "train_step", real_step)
    result = training.train(cfg, resume=True, stop_after=20, log=lambda *_: None)
    assert result["steps"] == 20

    run = tmp_path / "run"
    metrics = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    steps = [5, 10, 15, 20]
    assert sorted(metrics) == steps
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    accuracy = events.Scalars("accuracy")
    assert [e.step for e in accuracy] == steps  # step 15 once: the crashed run's was purged
    assert [e.value for e in accuracy] == pytest.approx([metrics[s]["accuracy"] for s in steps])
    for tag, key in (("loss", "loss"), ("lr", "lr"), ("samples_per_s", "samples_per_s")):
        assert events.Scalars(tag)[-1].value == pytest.approx(metrics[20][key], rel=1e-6)
    assert [e.value for e in events.Scalars("head_losses/2")] == pytest.approx(
        [metrics[s]["head_losses"][1] for s in steps])
    hparams = [yaml.safe_load(p.read_text()) for p in (run / "tensorboard").glob("*/hparams.yml")]
    assert len(hparams) == 2 and all(h["model.n_embd"] == 32 and h["runtime.log_with"] == "tensorboard" and
                                     h["hub.repo_id"] == "null" for h in hparams)


def test_a_tracker_that_is_not_installed_is_refused_in_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    import sys

    import trainer
    from hexadd.train import tracking
    from hexadd.common.errors import ConfigError
    from hexadd.train.loop import train
    monkeypatch.setattr(tracking, "installed", lambda package: False)
    with pytest.raises(ConfigError, match=r"tensorboard is not installed; run `pip install tensorboard==\d"):
        train(tracked_config(tiny_run, tmp_path))
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(sys, "argv", ["trainer.py", *sets("runtime.log_with=wandb")])
    monkeypatch.chdir(tmp_path)  # no data here: the tracker is refused before the data is looked for
    with pytest.raises(SystemExit) as exit:
        trainer.entry()
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: runtime.log_with: wandb is not installed; run `pip install wandb`")


def test_later_heads_weigh_head_weight_against_head_one():
    from hexadd.train.loop import weighted_loss
    losses = torch.tensor([2.0, 4.0, 6.0])
    assert weighted_loss(losses[:2], 1.0).item() == pytest.approx(3.0)            # the plain mean
    assert weighted_loss(losses[:2], 0.25).item() == pytest.approx((2 + 1) / 1.25)
    assert weighted_loss(losses, 0.5).item() == pytest.approx((2 + 2 + 3) / 2)
    assert weighted_loss(losses[:1], 0.25).item() == pytest.approx(2.0)            # one head: its own loss


def test_resume_matches_the_keys_field_metadata_names(tmp_path):
    """A resume must share every key of model, training and checks that field metadata does not mark free; the
    runtime, the folders and the free keys may change; a checkpoint without a key it needs is from an older
    version and is refused as one."""
    from hexadd.common.errors import ConfigError, DataError
    from hexadd.config.files import to_dict
    from hexadd.train.checkpoints import check_resumable
    config = to_dict(load(TrainConfig, ROOT / "train_config.yaml"))
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": "checkpoint-10"}))

    def saved_as(saved):
        (tmp_path / "checkpoint-10/trainer_state.json").write_text(json.dumps({"config": saved}))

    saved_as(config)
    free = json.loads(json.dumps(config))
    free["runtime"]["threads"], free["checks"]["certify"], free["training"]["grad_clip"] = 1, 0, 0.5
    free["output"]["model_dir"], free["model"]["dropout"] = "elsewhere", 0.1
    assert check_resumable(tmp_path, free) == tmp_path / "checkpoint-10"
    for section, key, value in (("training", "head_weight", 0.25), ("training", "mixture", {"replay": 0.1}),
                                ("checks", "families", {"carry": 0.5, "sums": 0.0}), ("model", "offset_scope", "row")):
        changed = json.loads(json.dumps(config))
        changed[section][key] = value
        with pytest.raises(ConfigError, match=f"{section}.{key} is .* but the checkpoint in .* was trained with"):
            check_resumable(tmp_path, changed)
    older = json.loads(json.dumps(config))
    del older["checks"]
    saved_as(older)
    with pytest.raises(DataError, match=r"written by an older version \(no checks.fresh_eval\)"):
        check_resumable(tmp_path, config)
