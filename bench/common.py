"""Shared by the benchmarks: machine description, matmul peak, and results files with their provenance (command,
commit, date, machine, resolved config: provenance())."""
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), **({"gpu": gpu} if gpu else {}), "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def matmul_peak(dtype_name: str = "float32", n: int = 2048, seconds: float = 3.0) -> float:
    """FLOP/s of a large square matmul with all cores: the ceiling training is measured against."""
    import torch
    torch.set_num_threads(os.cpu_count())
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm up
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        runs += 1
    return 2 * n**3 * runs / (time.perf_counter() - t0)


def commit() -> str:
    """The commit measured (HEXADD_COMMIT where the tree travels without its .git), with '+changes' when the
    tracked files differ from it."""
    import subprocess
    if os.environ.get("HEXADD_COMMIT"):
        return os.environ["HEXADD_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command() -> str:
    """The command line of this process, the script named relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    return "python3 " + " ".join([str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0], *sys.argv[1:]])


def resolved_config(train: list[str] | tuple = (), data: list[str] | tuple = (), train_file=None, data_file=None,
                    data_dir=None) -> dict:
    """The configs a run used, every default filled in: the training config (train_config.yaml, or train_file, with
    the `--set` overrides `train` applied) and the data config. With data_dir, the data config is the one its
    dataset card says generated it (what the run really read); else data_config.yaml (or data_file) with `data`."""
    from hexadd.config.schema import DataConfig, TrainConfig
    from hexadd.config.files import load, to_dict
    config = {"train": to_dict(load(TrainConfig, train_file or ROOT / "train_config.yaml", list(train)))}
    card = None
    if data_dir is not None and (Path(data_dir) / "README.md").is_file():
        from hexadd.data.dataset import read_card
        card = read_card(data_dir).get("config")
    config["data"] = card if card is not None else to_dict(load(DataConfig, data_file or ROOT / "data_config.yaml", list(data)))
    return config


def provenance(config: dict) -> dict:
    """What every results file starts with: the command, the commit, the date, the machine and the resolved config."""
    return {"command": command(), "commit": commit(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "config": config}


def save(name: str, result: dict, config: dict) -> Path:
    """bench/results/NAME.json: the result after its provenance (command, commit, date, machine, resolved config).
    `config` is required: the configs the measured run used, defaults resolved (resolved_config(), or a model's
    own saved config for benchmarks of a trained model)."""
    from hexadd.common.io import write_json
    path = RESULTS / f"{name}.json"
    write_json(path, {**provenance(config), **result})
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def weights_sha256(model_dir) -> str | None:
    """The SHA-256 of a model folder's weights: it ties results measured on one folder at different times (or a
    run's own results) to the same model."""
    import hashlib
    weights = Path(model_dir) / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None


def model_config(model_dir) -> dict:
    """The configs a trained model folder records: its model config.json and, where saved, the training config
    it was trained with (training_config.yaml) and the data it read; and the SHA-256 of its weights."""
    import json
    import yaml
    folder = Path(model_dir)
    out = {"model": json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else None}
    if (folder / "training_config.yaml").is_file():
        out["train"] = yaml.safe_load((folder / "training_config.yaml").read_text())
    sha = weights_sha256(folder)
    if sha:
        out["weights_sha256"] = sha
    return out


def need_data():
    if not (ROOT / "data" / "train.parquet").is_file() or not (ROOT / "tokenizer" / "tokenizer.json").is_file():
        sys.exit("run `make data tokenizer` first (the benchmarks use data/ and tokenizer/)")
