"""Shared by the benchmarks: machine description, matmul peak, results files."""
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


def save(name: str, result: dict) -> Path:
    """bench/results/NAME.json: the result with the command that produced it, the commit, the date and the machine."""
    from hexadd.io import write_json
    path = RESULTS / f"{name}.json"
    command = "python3 " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(ROOT))
                                     if Path(sys.argv[0]).resolve().is_relative_to(ROOT) else sys.argv[0], *sys.argv[1:]])
    write_json(path, {"command": command, "commit": commit(), "machine": machine(), **result})
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def need_data():
    if not (ROOT / "data" / "train.parquet").is_file() or not (ROOT / "tokenizer" / "tokenizer.json").is_file():
        sys.exit("run `make data tokenizer` first (the benchmarks use data/ and tokenizer/)")
