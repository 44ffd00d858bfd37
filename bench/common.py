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
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
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


def save(name: str, result: dict) -> Path:
    from hexadd.io import write_json
    path = RESULTS / f"{name}.json"
    write_json(path, {"machine": machine(), **result})
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def need_data():
    if not (ROOT / "data" / "train.parquet").is_file() or not (ROOT / "tokenizer" / "tokenizer.json").is_file():
        sys.exit("run `make data tokenizer` first (the benchmarks use data/ and tokenizer/)")
