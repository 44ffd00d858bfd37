"""Several processes through Accelerate on the CPU (torchrun + gloo), and devices that are not there."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_DATA, TINY_MODEL, assert_one_line_error, run_main, sets


def test_two_processes_train_as_one_group_and_write_one_set_of_outputs(tmp_path):
    cfg = ["--config", str(ROOT / "train_config.yaml")]
    assert run_main("data_generator.py", "--config", str(ROOT / "data_config.yaml"), *sets(*TINY_DATA), cwd=tmp_path).returncode == 0
    assert run_main("tokenizer.py", *cfg, cwd=tmp_path).returncode == 0
    model = [o for o in TINY_MODEL if not o.startswith("runtime.threads")] + ["runtime.threads=1",
                                                                               "runtime.log_with=tensorboard"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "trainer.py"), *cfg, *sets(*model)], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One process group of two (gloo), and only the main process speaks and writes.
    assert re.search(r"cpu(:0)?, fp32, 2 processes", proc.stdout)
    assert proc.stdout.count("model: ") == 1 and proc.stdout.count("trained 1200 steps") == 1
    metrics = [json.loads(line) for line in (tmp_path / "runs/default/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(100, 1201, 100))  # each evaluation logged once
    assert metrics[-1]["accuracy"] >= 0.95  # the same bar as the one-process tiny model
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "runs/default/tensorboard"))
    events.Reload()
    accuracy = events.Scalars("accuracy")  # written by the main process alone: each evaluation once
    assert [(e.step, pytest.approx(e.value)) for e in accuracy] == [(m["step"], m["accuracy"]) for m in metrics]
    cert = json.loads((tmp_path / "model/certificate.json").read_text())
    assert cert["n"] == 10_000 and cert["exhaustive"]  # both shards merged: every problem once
    wrong = (tmp_path / "model/certificate_wrong.txt").read_text().splitlines()
    assert len(wrong) == cert["wrong"] and not list((tmp_path / "model").glob(".certificate_wrong*"))
    assert cert["wrong"] <= 0.05 * cert["n"]


@pytest.mark.parametrize("device", ["cuda", "mps", "cuda:7"])
def test_a_device_that_is_not_there_is_refused(tmp_path, device):
    import torch
    if device.startswith("cuda") and torch.cuda.is_available() or device == "mps" and torch.backends.mps.is_available():
        pytest.skip(f"this machine has {device}")
    proc = run_main("trainer.py", "--config", str(ROOT / "train_config.yaml"), *sets(f"runtime.device={device}"),
                      cwd=tmp_path)
    assert_one_line_error(proc, "runtime.device", device.split(":")[0])
    assert not (tmp_path / "runs").exists()
    proc = run_main("inference.py", "--model", str(tmp_path), "--device", device, "1+1", cwd=tmp_path)
    assert_one_line_error(proc, "--device")
