"""What every script shares: the --config/--set arguments and the one-line error exit."""
import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import HexaddError

EXIT_USAGE = 2


PROJECT = Path(__file__).resolve().parents[2]  # hexadd/common/cli.py -> the checkout
EXAMPLES = {"data_config.yaml": "problems.count=20000", "train_config.yaml": "training.batch_size=64",
            "configs/anylength.yaml": "runtime.device=cuda"}


def default_config(name: str) -> str:
    """The config in the current folder if there is one, else the project's own: scripts run from anywhere."""
    return name if Path(name).is_file() or not (PROJECT / name).is_file() else str(PROJECT / name)


def add_config_args(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--config", default=default_config(default),
                        help=f"YAML config (default: ./{default}, else the project's {default})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"override one config value, e.g. --set {EXAMPLES.get(default, 'section.key=value')} (repeatable)")


class _Parser(argparse.ArgumentParser):
    """argparse that keeps its usage errors to one line."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


def parser(description: str) -> argparse.ArgumentParser:
    # Raw: the scripts' docstrings hold usage examples whose line breaks matter.
    return _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)


def run(main: Callable[[], None]) -> None:
    """Run a script's main: HexaddError becomes one line on stderr and exit code 2, never a traceback."""
    sys.stdout.reconfigure(line_buffering=True)  # progress lines reach a log file as they happen
    try:
        main()
    except HexaddError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except BrokenPipeError:
        # `inference.py ... | head` closes stdout early: not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as e:  # a full disk, a read-only folder: files are replaced whole, so earlier outputs stand
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}; earlier outputs are unchanged", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt as e:
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        sys.exit(130)
