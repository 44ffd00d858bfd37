#!/usr/bin/env python3
"""Write addition problems +A+B+C+ (base-b digits, reversed) into train and held-out files."""
import time

from hexadd.common import cli
from hexadd.config.schema import DataConfig
from hexadd.config.files import load
from hexadd.data.generate import generate


def main():
    p = cli.parser(__doc__)
    cli.add_config_args(p, "data_config.yaml")
    args = p.parse_args()
    cfg = load(DataConfig, args.config, args.overrides)
    t0 = time.perf_counter()
    s = generate(cfg)
    n = cfg.numbers
    print(f"{s.train:,} training and {s.held_out:,} held-out problems "
          f"(operands {n.min_operand}..{n.max_operand}, base {n.base}) in {time.perf_counter() - t0:.1f}s")
    print(f"overlap between splits (unordered pairs): {s.overlap}")
    print(f"wrote {s.out_dir}/")


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
