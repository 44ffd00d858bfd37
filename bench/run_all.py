#!/usr/bin/env python3
"""Every CPU benchmark, one after another (`make bench`); `gpu.py` as well where CUDA is present."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
scripts = ["train_speed.py", "decode_speed.py", "certify_speed.py", "time_to_100.py", "kill_resume.py"]
try:
    import torch
    if torch.cuda.is_available():
        scripts.append("gpu.py")
except ImportError:
    pass
for script in scripts:
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
