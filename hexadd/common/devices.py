"""Devices and precision: which accelerator a run uses, and the autocast that goes with it."""
import contextlib

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


def pick_device(name: str, what: str = "runtime.device"):
    """`auto` is CUDA, else MPS, else the CPU; asking for one that is not there is a ConfigError."""
    import torch
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise ConfigError(f"{what}: must be one of {', '.join(DEVICES)} (cuda:N for one GPU), got {name!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what}: {name} asked for, but this machine has no CUDA GPU that PyTorch can use "
                          f"(torch {torch.__version__}); use cpu or auto")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what}: mps asked for, but this machine has no Apple GPU that PyTorch can use; use cpu or auto")
    if kind == "cuda" and ":" in name:
        index = name.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ConfigError(f"{what}: {name}: this machine has GPUs cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)


def resolve_precision(name: str, device) -> str:
    """`auto` is fp32 on every device. Measured on an H200 (bench/results/gpu-*.json): these small models train
    no faster in bf16 (the step is latency-bound, 11,000-12,700 samples/s either way), and bf16 runs ended
    less exact: neither config reached 100% held-out in bf16, the 6.4M preset had 9 wrong in 10^6 fresh
    problems after its full bf16 schedule against 3 in fp32. On a CPU without native bf16 (this project's
    AVX2 machines) bf16 matmuls are 400x slower; where bf16 is native, ask for it with precision: bf16."""
    if name == "auto":
        return "fp32"
    if name not in PRECISIONS:
        raise ConfigError(f"runtime.precision: must be auto or one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "fp16" and device.type == "cpu":
        raise ConfigError("runtime.precision: fp16 autocast is for GPUs; use bf16 or fp32 on the CPU")
    return name


def autocast(precision: str, device):
    """Mixed precision for the forward pass; master weights and optimizer state stay fp32."""
    import torch
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
