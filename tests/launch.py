"""Run the project's scripts as processes forked from one Python that has already imported torch, transformers
and the package (multiprocessing's forkserver): each run is a real process, with its own pid, signals, exit
code and files, without the ~7 s of starting Python and importing them again.

Only for runs whose environment is the server's own (offline, no progress bars): huggingface_hub and tqdm read
their settings when they are imported, so a run that points HF_ENDPOINT elsewhere keeps a fresh process."""
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
PRELOAD = ["torch", "transformers", "hexadd.train.loop", "hexadd.data.generate", "hexadd.data.tokenizer", "matplotlib.pyplot"]

_context = None
_FILES = tempfile.TemporaryDirectory(prefix="hexadd-launch-")  # every run's stdout and stderr, until the session ends


def _context_started():
    """The forkserver, started once with ENV in its environment and the heavy modules imported."""
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        saved = dict(os.environ)
        os.environ.update(ENV)
        try:
            from multiprocessing import forkserver
            forkserver.ensure_running()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        _context = context
    return _context


def _run(script: str, args: list[str], cwd: str, out: str, err: str) -> None:
    """In the forked child: the script's stdout and stderr go to files, then it runs as `python script args`."""
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(cwd)
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).parent))
    runpy.run_path(script, run_name="__main__")


class Launched:
    """The part of subprocess.Popen the tests use: poll, wait, communicate, send_signal, kill, pid, returncode."""

    def __init__(self, script: str, args: list[str], cwd: Path, log: Path | None = None):
        """`log`: stdout and stderr both to this file (as Popen(stdout=f, stderr=STDOUT)), else each to its own."""
        files = tempfile.mkdtemp(dir=_FILES.name)
        self._out, self._err = (os.path.join(files, n) for n in ("stdout", "stderr"))
        if log is not None:
            self._out = self._err = str(log)
        for path in (self._out, self._err):
            open(path, "w").close()  # there, empty, before the process starts, as Popen's would be
        script = str(script if Path(script).is_absolute() else ROOT / script)
        # Daemonic: a run a failed test leaves behind is stopped when the session ends, not waited for.
        self._process = _context_started().Process(target=_run, args=(script, list(args), str(cwd), self._out, self._err),
                                                   daemon=True)
        self._process.start()
        self.pid = self._process.pid
        self.args = [script, *args]

    @property
    def returncode(self):
        return self._process.exitcode

    def poll(self):
        return self._process.exitcode

    def wait(self, timeout: float = 600):
        self._process.join(timeout)
        if self._process.exitcode is None:
            self._process.kill()
            raise TimeoutError(f"{self.args} still running after {timeout} s: killed")
        return self._process.exitcode

    def output(self) -> tuple[str, str]:
        return Path(self._out).read_text(), Path(self._err).read_text()

    def communicate(self, timeout: float = 600) -> tuple[str, str]:
        self.wait(timeout)
        return self.output()

    def completed(self, timeout: float = 600) -> subprocess.CompletedProcess:
        """Wait for the end, as subprocess.run would."""
        out, err = self.communicate(timeout)
        return subprocess.CompletedProcess(self.args, self.returncode, out, err)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # as Popen: an ended run (its pid perhaps reused) gets nothing
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self._process.kill()
