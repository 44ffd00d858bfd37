"""Publishing and downloading through the real huggingface_hub client, against a local stand-in Hub."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from conftest import assert_one_line_error, run_main, run_script
from hub_server import HubServer

TOKEN = "hf_test_token_do_not_print"
REPO = "tester/tiny-adder"


@pytest.fixture()
def hub(tmp_path):
    with HubServer(tokens={TOKEN}, forbidden={"someone-else/adder"}) as server:
        yield server


def hub_env(hub, tmp_path, token=TOKEN, offline="0"):
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": offline, "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_CACHE": str(tmp_path / "hf_cache")}
    env["HF_TOKEN"] = token or ""
    return env


def model_copy(tiny_run, tmp_path):
    shutil.copytree(tiny_run / "model", tmp_path / "model")
    return tmp_path / "model"


def test_push_then_load_by_repo_id_online_offline_and_without_the_package(tiny_run, hub, tmp_path):
    model_dir = model_copy(tiny_run, tmp_path)
    env = hub_env(hub, tmp_path)
    pushed = run_script("hexadd.hub", "push", str(model_dir), REPO, cwd=tmp_path, env=env, module=True)
    assert pushed.returncode == 0, pushed.stderr
    files = hub.files(REPO)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "model.py", "positions.py", "README.md",
                 "metrics.jsonl", "eval_results.json", "training_curves.png", "accuracy_by_length.png",
                 "attention_visualizations/all_layers.png"):
        assert name in files, name
    assert files["model.safetensors"] == (model_dir / "model.safetensors").read_bytes()
    # The model card holds the measured accuracy in its model-index.
    card = files["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    measured = json.loads((model_dir / "eval_results.json").read_text())["accuracy"]
    cert = json.loads((model_dir / "certificate.json").read_text())
    metrics = [m for r in meta["model-index"][0]["results"] for m in r["metrics"]]
    held_out = next(m for m in metrics if m["name"] == "Exact match (held-out)")
    assert held_out["type"] == "exact_match" and held_out["value"] == measured
    # The certificate leads: its exact match and the 95% upper bound on the error rate, with N and the seed.
    assert metrics[0]["type"] == "exact_match" and metrics[0]["value"] == 1 - cert["error_rate"]
    # 0..99 holds 10,000 problems, fewer than the trainer's 10^5: every one was checked.
    assert metrics[0]["args"] == {"n": 10_000, "wrong": cert["wrong"], "exhaustive": True}
    assert metrics[1]["type"] == "certified_error_rate_upper_95" and metrics[1]["value"] == cert["upper_95"]
    assert f"{cert['n']:,} problems" in card and "certificate.json" in files
    assert "search" not in cert and "error search" not in card  # all checked: nothing left to search
    assert "trust_remote_code=True" in card and "+A+B+" in card
    # The published model code imports nothing from this package.
    for code in ("model.py", "positions.py"):
        text = files[code].decode()
        assert "hexadd." not in text.replace("hexadd-gpt2", "") and "from hexadd" not in text
    # The token is never printed or written.
    assert TOKEN not in pushed.stdout + pushed.stderr
    assert all(TOKEN.encode() not in data for data in files.values())
    assert not any(TOKEN in p.read_text(errors="ignore") for p in model_dir.rglob("*") if p.is_file())

    local = run_main("inference.py", "--model", str(model_dir), "12+34", "99+1", "7+8", cwd=tmp_path)
    assert local.returncode == 0 and len(local.stdout.splitlines()) == 3, local.stderr
    online = run_script("inference.py", "--model", REPO, "12+34", "99+1", "7+8", cwd=tmp_path, env=env)
    assert online.returncode == 0, online.stderr
    assert online.stdout == local.stdout
    hub.stop()  # from here on, only the cache can answer
    offline = run_script("inference.py", "--model", REPO, "12+34", "99+1", "7+8", cwd=tmp_path,
                         env=hub_env(hub, tmp_path, offline="1"))
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == local.stdout

    # Without the package: trust_remote_code and AutoTokenizer, in a process that cannot import hexadd.
    script = f"""
import sys, json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained({REPO!r}, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained({REPO!r})
assert not any(m == "hexadd" or m.startswith("hexadd.") for m in sys.modules)
ids = torch.tensor([tok.encode("+21+43+64+")])
print(json.dumps(model(ids).logits[0].tolist()))
"""
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    clean_env.update(hub_env(hub, tmp_path, offline="1"), HF_HUB_DISABLE_TELEMETRY="1")
    remote = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=clean_env)
    assert remote.returncode == 0, remote.stderr
    import torch
    from hexadd.inference.loading import load_model
    model, tok = load_model(str(model_dir))
    expected = model(torch.tensor([tok.encode("+21+43+64+")])).logits[0]
    assert torch.allclose(torch.tensor(json.loads(remote.stdout)), expected, atol=1e-5)


def test_push_without_token_says_how_to_log_in(tiny_run, hub, tmp_path):
    model_dir = model_copy(tiny_run, tmp_path)
    before = sorted(p.name for p in model_dir.iterdir())
    proc = run_script("hexadd.hub", "push", str(model_dir), REPO, cwd=tmp_path, env=hub_env(hub, tmp_path, token=None),
                      module=True)
    assert_one_line_error(proc, "not logged in", "hf auth login")
    assert REPO not in hub.repos()
    assert sorted(p.name for p in model_dir.iterdir()) == before


def test_push_to_a_forbidden_repo(tiny_run, hub, tmp_path):
    model_dir = model_copy(tiny_run, tmp_path)
    proc = run_script("hexadd.hub", "push", str(model_dir), "someone-else/adder", cwd=tmp_path,
                      env=hub_env(hub, tmp_path), module=True)
    assert_one_line_error(proc, "no permission to write to someone-else/adder")
    assert (model_dir / "model.safetensors").is_file()


def test_push_with_the_hub_down_or_offline(tiny_run, hub, tmp_path):
    model_dir = model_copy(tiny_run, tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**hub_env(hub, tmp_path), "HF_ENDPOINT": dead}
    proc = run_script("hexadd.hub", "push", str(model_dir), REPO, cwd=tmp_path, env=env, module=True)
    assert_one_line_error(proc, "cannot reach the Hub")
    proc = run_script("hexadd.hub", "push", str(model_dir), REPO, cwd=tmp_path, env=hub_env(hub, tmp_path, offline="1"),
                      module=True)
    assert_one_line_error(proc, "HF_HUB_OFFLINE")
    assert (model_dir / "model.safetensors").is_file()


def test_trainer_push_without_token_stops_before_training(tmp_path, hub):
    from conftest import ROOT
    proc = run_script("trainer.py", "--config", str(ROOT / "train_config.yaml"), "--push", REPO, cwd=tmp_path,
                      env=hub_env(hub, tmp_path, token=None))
    assert_one_line_error(proc, "not logged in")


def test_push_data_then_train_from_the_hub_dataset_online_and_offline(tiny_run, hub, tmp_path):
    from conftest import ROOT
    from hexadd.hub.card import model_card

    data_dir = tmp_path / "data"
    shutil.copytree(tiny_run / "data", data_dir)
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}
    # No token: refused, nothing sent, nothing changed.
    proc = run_script("hexadd.hub", "push-data", str(data_dir), "tester/sums", cwd=tmp_path,
                      env=hub_env(hub, tmp_path, token=None), module=True)
    assert_one_line_error(proc, "not logged in")
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before

    proc = run_script("hexadd.hub", "push-data", str(data_dir), "tester/sums", cwd=tmp_path, env=hub_env(hub, tmp_path),
                      module=True)
    assert proc.returncode == 0, proc.stderr
    files = hub.files("datasets/tester/sums")
    assert sorted(files) == ["README.md", "test.parquet", "train.parquet"]
    assert files["train.parquet"] == before["train.parquet"]
    card = yaml.safe_load(files["README.md"].decode().split("---")[1])
    assert card["configs"][0]["data_files"] == [{"split": "train", "path": "train.parquet"},
                                                {"split": "test", "path": "test.parquet"}]
    assert card["hexadd"]["repo_id"] == "tester/sums" and 'load_dataset("tester/sums")' in files["README.md"].decode()
    assert (data_dir / "README.md").read_bytes() == files["README.md"]  # the local card now names its repo

    # data.repo_id instead of data.dir: downloaded once, then read from the cache with the Hub offline.
    cfg = ["--config", str(ROOT / "train_config.yaml"), "--set", "data.repo_id=tester/sums", "--set", "data.dir=nowhere"]
    for offline in ("0", "1"):
        proc = run_script("tokenizer.py", *cfg, cwd=tmp_path, env=hub_env(hub, tmp_path, offline=offline))
        assert proc.returncode == 0, proc.stderr
        assert f"round-trips all {yaml.safe_load(files['README.md'].decode().split('---')[1])['hexadd']['splits']['train']:,}" in proc.stdout
    proc = run_script("tokenizer.py", *cfg[:3], "data.repo_id=tester/none", cwd=tmp_path,
                      env=hub_env(hub, tmp_path, offline="1"))
    assert_one_line_error(proc, "tester/none is not in the local Hugging Face cache")

    # A model trained on a Hub dataset names it in its card's metadata.
    model_dir = model_copy(tiny_run, tmp_path)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["dataset"] is None
    (model_dir / "config.json").write_text(json.dumps({**config, "dataset": "tester/sums"}))
    assert model_card(model_dir, REPO).data.datasets == ["tester/sums"]


def test_model_card_says_how_positions_reach_the_model(tiny_run, tmp_path):
    from hexadd.hub.card import model_card
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_run / "model", model_dir)
    assert "Position ids are block positions" in model_card(model_dir, "tester/adder").text
    config = json.loads((model_dir / "config.json").read_text())
    config.update(position_scheme="block_relative", window=2)
    (model_dir / "config.json").write_text(json.dumps(config))
    text = model_card(model_dir, "tester/adder").text
    assert "keys within ±2 block positions" in text and "no position table" in text and "any length" in text
    config.update(position_scheme="learned")
    (model_dir / "config.json").write_text(json.dumps(config))
    assert "Position ids number the tokens 0, 1, 2" in model_card(model_dir, "tester/adder").text


def test_model_card_reports_the_certificates_error_search(tiny_run, tmp_path):
    """A sampled certificate with a search: the card says what it found, and that a find means not exact."""
    from hexadd.hub.card import model_card
    from hexadd.verify.certificate import save
    from hexadd.verify.certify import certify
    from hexadd.inference.loading import load_model
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_run / "model", model_dir)
    model, tok = load_model(str(model_dir))
    cert = certify(model, tok, 500, seed=2, progress=False, search_rounds=3)
    save(cert, model_dir)
    text = model_card(model_dir, "tester/adder").text
    s = cert.search
    assert f"({s['rounds']} rounds of one-digit neighbours, {s['evaluated']:,} problems)" in text
    assert ("so the model is not exact" in text) is (s["wrong"] > 0)
    cert.search = {**s, "wrong": 2, "examples": ["1+2=4 (expected 3)", "5+5=11 (expected 10)"]}
    save(cert, model_dir)
    text = model_card(model_dir, "tester/adder").text
    assert "found **2 wrong**, so the model is not exact on its range (e.g. 1+2=4 (expected 3); 5+5=11" in text
