import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import launch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The datasets library's cache (Arrow copies of the Parquet splits, tokenized encodings) stays inside the test run.
_DATASETS_CACHE = tempfile.TemporaryDirectory(prefix="hexadd-datasets-")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE.name

# A problem set small enough to learn in seconds: base 10, operands 0..99, every pair.
TINY_DATA = ["numbers.base=10", "numbers.max_operand=99", "problems.exhaustive=true", "problems.held_out_fraction=0.1"]
# The recipe from before length balancing, the uniform rows and the 1% learning-rate floor: balancing would
# spend a quarter of this short run on the 100 one-digit + one-digit problems (80.7% held-out instead of >= 95%).
TINY_MODEL = ["model.n_embd=64", "model.n_layer=2", "model.n_head=4", "model.n_positions=16",
              "training.batch_size=64", "training.learning_rate=0.003", "training.warmup_steps=50",
              "training.min_lr_ratio=0.1", "training.balance_lengths=false", "training.mixture.uniform=0",
              "training.max_steps=1200", "checks.eval_interval=100", "runtime.threads=2",
              "checks.fresh_eval=2000", "checks.stop_gate=10000"]


def run_script(script: str, *args: str, cwd: Path, input: str | None = None, env: dict | None = None,
               module: bool = False, fresh: bool = False) -> subprocess.CompletedProcess:
    """Run one of the project's scripts (or `python -m module`) as a user would, from `cwd`, offline unless `env`
    says otherwise: in a process forked from the session's preloaded Python (tests/launch.py), or in a new Python
    where the run needs another environment, stdin or a module, or asks to be `fresh`."""
    if not (fresh or env or module or input is not None):
        return launch.Launched(script, args, cwd).completed()
    full_env = {**os.environ, **launch.ENV, **(env or {})}
    target = ["-m", script] if module else [str(ROOT / script)]
    return subprocess.run([sys.executable, *target, *args], cwd=cwd, capture_output=True, text=True,
                          env=full_env, input=input, timeout=600)


def run_main(script: str, *args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a script's entry point inside this process, as run_script does in a new one: the same argument
    parsing, error handling and exit codes, without the ~8 s of starting Python and importing torch and
    transformers again. For the checks that end before training; each script keeps a real launch elsewhere."""
    import contextlib
    import io
    import runpy
    entry = runpy.run_path(str(ROOT / script), run_name="hexadd_script")["entry"]
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()  # cli.run reconfigures stdout
    argv, stdin, here = sys.argv, sys.stdin, os.getcwd()
    code = 0
    try:
        sys.argv, sys.stdin = [script, *args], io.StringIO(input or "")
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            entry()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    finally:
        sys.argv, sys.stdin = argv, stdin
        os.chdir(here)
    out.flush()
    return subprocess.CompletedProcess([script, *args], code, out.buffer.getvalue().decode(), err.getvalue())


def sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Data, tokenizer and a trained tiny model in one folder, shared by the tests that need a real model."""
    d = tmp_path_factory.mktemp("tiny")
    for script, overrides in (("data_generator.py", TINY_DATA), ("tokenizer.py", []), ("trainer.py", TINY_MODEL)):
        cfg = "data_config.yaml" if script == "data_generator.py" else "train_config.yaml"
        proc = run_script(script, "--config", str(ROOT / cfg), *sets(*overrides), cwd=d)
        assert proc.returncode == 0, proc.stderr
    return d
