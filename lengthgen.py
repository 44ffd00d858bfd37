#!/usr/bin/env python3
"""Length generalization: train on short operands (configs/anylength.yaml: 1..8 hex digits), then measure
exact match on every pair of operand lengths up to four times longer. Run it again to continue a stopped run.

  python3 lengthgen.py
  python3 lengthgen.py --set training.device=cuda --set training.max_steps=20000 --set lengthgen.dir=runs/lengthgen-gpu
"""
import signal

from hexadd import cli
from hexadd.config_files import load
from hexadd.lengthgen import LengthgenConfig


def main():
    p = cli.parser(__doc__)
    cli.add_config_args(p, "configs/anylength.yaml")
    args = p.parse_args()
    cfg = load(LengthgenConfig, args.config, args.overrides)
    from hexadd.devices import pick_device
    pick_device(cfg.training.device)  # a missing GPU is refused before any work
    # A scheduler's SIGTERM stops the run like Ctrl-C: with a checkpoint, and the grid cells measured so far.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from hexadd.lengthgen import run
    run(cfg)


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
