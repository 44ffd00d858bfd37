#!/usr/bin/env python3
"""The any-length certificate at a chosen size: `--per-family` problems of each family (uniform, carry runs, all-F
plus 1, mixed lengths) in every band of operand lengths, 1-8 .. 513-1,024 hex digits (a tenth of that at 4,096),
teacher forced (= greedy decoding), with the Clopper-Pearson bound per band and the locality measurement. The
same computation `make anylength` runs with `lengthgen.bands` problems a family, here with more, and another seed.

    python3 bench/bands.py --model runs/anylength/model --per-family 2500 --seed 1 --name anylength-heads2-seed0-bands10k
"""
import argparse
import os
import time

from common import ROOT, model_config, save


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(ROOT / "runs" / "anylength" / "model"))
    p.add_argument("--per-family", type=int, default=2500, help="problems a family in each band (4 families)")
    p.add_argument("--seed", type=int, default=1, help="seed of the samples (make anylength draws seed 0)")
    p.add_argument("--name", default="anylength-bands")
    args = p.parse_args()
    import torch

    from hexadd.verify.bands import certify_bands, locality, report
    from hexadd.inference.loading import load_model

    torch.set_num_threads(os.cpu_count())
    model, tok = load_model(args.model)
    t0 = time.perf_counter()
    result = {"bands": certify_bands(model, tok, args.per_family, seed=args.seed), "locality": locality(model, tok)}
    print(report(result))
    save(args.name, config=model_config(args.model), result={"model": args.model, "per_family": args.per_family,
                     "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1), **result})


if __name__ == "__main__":
    main()
