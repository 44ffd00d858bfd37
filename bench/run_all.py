#!/usr/bin/env python3
"""Every benchmark, one after another (`make bench`)."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for script in ("train_speed.py", "decode_speed.py", "time_to_100.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
