"""Kills, interrupts, locks, resume checks, file modes, faults: nothing lost and nothing half-written."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TINY_DATA, assert_one_line_error, run_main, sets
import launch
from launch import Launched

CFG = ["--config", str(ROOT / "train_config.yaml")]
# Short, fully deterministic runs: no early stop, checkpoints and evaluations every 20 steps.
SHORT = ["model.n_embd=32", "model.n_layer=1", "model.n_head=2", "model.n_positions=16", "training.batch_size=32",
         "training.max_steps=120", "checks.eval_interval=20", "runtime.checkpoint_interval=20",
         "checks.early_stop=false", "checks.fresh_eval=500", "checks.certify=0", "runtime.threads=1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel")
    assert run_main("data_generator.py", "--config", str(ROOT / "data_config.yaml"), *sets(*TINY_DATA), cwd=d).returncode == 0
    assert run_main("tokenizer.py", *CFG, cwd=d).returncode == 0
    return d


def trainer(cwd, name, *extra, resume=False, fresh=False):
    """trainer.py in a process of its own: forked from the preloaded Python (tests/launch.py), or a new Python."""
    args = [*CFG, *sets(*SHORT, f"output.model_dir={name}/model", f"output.run_dir={name}/run"), *extra]
    args += ["--resume"] if resume else []
    if fresh:
        return subprocess.Popen([sys.executable, str(ROOT / "trainer.py"), *args], cwd=cwd, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **launch.ENV})
    return Launched("trainer.py", args, cwd)


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.output()[1]
        assert time.time() - t0 < timeout
        time.sleep(0.01)


def test_sigkill_stop_after_and_resume_give_the_same_weights_and_average(data_dir):
    """Killed at any moment, stopped with --stop-after and resumed, a run ends with the bytes of an uninterrupted
    one: weights, optimizer state and the weight average (on by default), which is what the model folder keeps."""
    # Side by side, one core each. The uninterrupted run has a Python of its own, so the bytes must not depend on
    # the interpreter either (its hash seed, its libraries' random state).
    full, killed = trainer(data_dir, "full", fresh=True), trainer(data_dir, "killed")
    wait_for(data_dir / "killed/run/checkpoint-40", killed)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    part = trainer(data_dir, "killed", "--stop-after", "80", resume=True)
    out, err = part.communicate()
    assert part.returncode == 0 and "resumed from step" in out, err
    assert [p.name for p in (data_dir / "killed/run").glob("checkpoint-*")] == ["checkpoint-80"]  # older ones pruned
    resumed = trainer(data_dir, "killed", resume=True)
    out, err = resumed.communicate()
    assert resumed.returncode == 0 and "resumed from step 80" in out, err
    out, err = full.communicate()
    assert full.returncode == 0, err
    for f in ("run/checkpoint-120/model.safetensors", "run/checkpoint-120/optimizer.safetensors", "model/model.safetensors"):
        assert (data_dir / "full" / f).read_bytes() == (data_dir / "killed" / f).read_bytes(), f
    steps = [json.loads(line)["step"] for line in (data_dir / "killed/run/metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(20, 121, 20))
    # The checkpoint holds the average beside the raw weights, and the model folder the average, not the raw.
    from safetensors.torch import load_file
    raw, kept = (load_file(data_dir / "full" / f) for f in ("run/checkpoint-120/model.safetensors", "model/model.safetensors"))
    averaged = {k[len("extra.ema."):]: v for k, v in load_file(data_dir / "full/run/checkpoint-120/optimizer.safetensors").items()
                if k.startswith("extra.ema.") and k != "extra.ema.n_averaged"}
    assert averaged.keys() == raw.keys() and not all(torch.equal(raw[k], averaged[k]) for k in raw)
    assert not all(torch.equal(raw[k], kept[k]) for k in raw)


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(data_dir):
    proc = trainer(data_dir, "interrupted")
    wait_for(data_dir / "interrupted/run/metrics.jsonl", proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "checkpoint saved" in err and "--resume" in err
    latest = json.loads((data_dir / "interrupted/run/latest.json").read_text())["checkpoint"]
    step = int(latest.split("-")[1])
    assert step >= 20
    resumed = trainer(data_dir, "interrupted", resume=True)
    out, err = resumed.communicate()
    assert resumed.returncode == 0 and f"resumed from step {step}" in out, err


def test_second_trainer_on_the_same_run_dir_is_refused(data_dir):
    first = trainer(data_dir, "locked", *sets("training.max_steps=100000"))
    wait_for(data_dir / "locked/run/config.yaml", first)
    second = trainer(data_dir, "locked")
    out, err = second.communicate()
    first.kill()
    first.wait()
    assert second.returncode == 2 and "in use by another trainer" in err and len(err.strip().splitlines()) == 1
    # The lock goes with the process, however it ended (here SIGKILL): the next trainer may take it.
    from filelock import FileLock
    with FileLock(data_dir / "locked/run/.trainer.lock", blocking=False):
        pass


def test_resume_refuses_a_changed_config_and_a_missing_checkpoint(data_dir):
    assert trainer(data_dir, "changed", *sets("training.max_steps=40")).wait() == 0
    proc = run_main("trainer.py", *CFG, *sets(*SHORT, "output.model_dir=changed/model", "output.run_dir=changed/run",
                                               "model.n_embd=64"), "--resume", cwd=data_dir)
    assert_one_line_error(proc, "model.n_embd is 64", "trained with 32")
    proc = run_main("trainer.py", *CFG, *sets(*SHORT, "output.model_dir=changed/model", "output.run_dir=changed/run"),
                      "--resume", cwd=data_dir)
    assert_one_line_error(proc, "training.max_steps is 120", "trained with 40")
    proc = run_main("trainer.py", *CFG, *sets(*SHORT, "output.model_dir=changed/model", "output.run_dir=changed/run",
                                               "training.max_steps=40", "training.head_weight=0.25"), "--resume", cwd=data_dir)
    assert_one_line_error(proc, "training.head_weight is 0.25", "trained with 1.0")
    proc = run_main("trainer.py", *CFG, *sets(*SHORT, "output.run_dir=nothing/run"), "--resume", cwd=data_dir)
    assert_one_line_error(proc, "no checkpoint in nothing/run")
    assert not (data_dir / "nothing").exists()


def test_outputs_have_normal_file_modes(tiny_run):
    old = os.umask(0o022)
    os.umask(old)
    if old != 0o022:
        pytest.skip("needs the usual umask 022")
    for name in ("model.safetensors", "config.json", "eval_results.json", "accuracy_by_length.png",
                 "certificate.json", "training_curves.png"):
        mode = (tiny_run / "model" / name).stat().st_mode & 0o777
        assert mode == 0o644, (name, oct(mode))
    for name in ("train.parquet", "test.parquet", "README.md"):
        assert (tiny_run / "data" / name).stat().st_mode & 0o777 == 0o644


def test_empty_config_file_is_refused(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    proc = run_main("trainer.py", "--config", str(tmp_path / "empty.yaml"), cwd=tmp_path)
    assert_one_line_error(proc, "empty")


def test_full_disk_leaves_the_model_folder_intact(tiny_run, tmp_path):
    """The weights writer runs out of space halfway through model.safetensors: one line, exit 2, and the
    model folder of the earlier run exactly as it was."""
    import shutil
    for name in ("model", "tokenizer", "data"):
        shutil.copytree(tiny_run / name, tmp_path / name)
    before = {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir() if p.is_file()}
    (tmp_path / "full_disk.py").write_text("""
import errno, runpy, sys
import transformers.modeling_utils as mu
def full_disk(tensors, filename, metadata=None):
    with open(filename, "wb") as f:
        f.write(b"half a file")
    raise OSError(errno.ENOSPC, "No space left on device", filename)
mu.safe_save_file = full_disk
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
""")
    proc = Launched(tmp_path / "full_disk.py", [str(ROOT / "trainer.py"), *CFG, *sets(*SHORT, "training.max_steps=20")],
                    tmp_path).completed()
    assert_one_line_error(proc, "No space left on device", "earlier outputs are unchanged")
    assert {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir() if p.is_file()} == before
