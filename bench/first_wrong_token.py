#!/usr/bin/env python3
"""Where a length-generalization model first goes wrong: for fresh problems of given operand lengths,
head 1's first wrong answer token (teacher forced: 0 is the answer's least significant digit), counted.

    python3 bench/first_wrong_token.py runs/lengthgen/model --cells 5x5 5x1 1x5 6x6 --name first_wrong-lengthgen
"""
import argparse
from collections import Counter

from common import model_config, save


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model folder")
    p.add_argument("--cells", nargs="+", default=["4x4", "5x5", "5x1", "1x5", "6x6"], help="AxB operand digit counts")
    p.add_argument("--per-cell", type=int, default=500)
    p.add_argument("--seed", type=int, default=123, help="not the grid's seed, so these problems are new to it")
    p.add_argument("--name", required=True, help="results file name under bench/results/")
    args = p.parse_args()

    from hexadd.verify.verdicts import head1_guess
    from hexadd.data.encoding import ProblemEncoder
    from hexadd.verify.grids import cell_operands, first_wrong
    from hexadd.inference.loading import load_model
    model, tok = load_model(args.model)
    c = model.config
    encoder = ProblemEncoder(tok, c.base, c.reverse, c.max_operand)
    cells = []
    for cell in args.cells:
        i, j = map(int, cell.split("x"))
        guess, labels = head1_guess(model, encoder.encode_digits(*cell_operands(i, j, args.per_cell, c.base, args.seed)))
        _, bad, first = first_wrong(guess, labels)
        counts = Counter(first[bad].tolist())
        cells.append({"digits_a": i, "digits_b": j, "total": args.per_cell, "right": args.per_cell - sum(counts.values()),
                      "first_wrong_token": {str(k): counts[k] for k in sorted(counts)}})
        print(f"{i}+{j} digits: {cells[-1]['right']}/{args.per_cell} right; first wrong answer token: "
              + ", ".join(f"{k}: {counts[k]}" for k in sorted(counts)))
    save(args.name, {"model": args.model, "seed": args.seed, "cells": cells}, config=model_config(args.model))


if __name__ == "__main__":
    main()
