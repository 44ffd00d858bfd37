"""Atomic writes: a reader (or a kill) never sees half a file."""
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path next to `path`; rename it over `path` only if the block succeeds.

    The file gets the mode any new file would (0644 under the usual umask 022), not mkstemp's 0600:
    model folders are shared and served."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def normal_modes(folder: str | os.PathLike) -> None:
    """Give every file under `folder` the mode a new file gets (libraries' own atomic writers leave 0600)."""
    mode = 0o666 & ~_umask()
    for p in Path(folder).rglob("*"):
        if p.is_file():
            os.chmod(p, mode)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w"):
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_json(path, obj) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
