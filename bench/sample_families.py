#!/usr/bin/env python3
"""Where a nearly exact model's errors hide: wrong problems, and problems right by a thin margin, among N
problems of each kind the trainer can draw: uniform over the range (the certificate's own sample for
`--seed`), built around carry runs (`checks.families.carry`) and with uniform column sums
(`checks.families.sums`). The margin of a problem is its smallest gap, over the answer's tokens, between head
1's logit for the right token and the highest other one (below 0: wrong, teacher forced = greedy decoding).
A family whose errors are too rare for N problems to show often shows in its thin margins."""
import argparse
import os

from common import ROOT, model_config, save

THRESHOLDS = (0, 1, 2, 3, 4)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(ROOT / "model"))
    p.add_argument("--problems", type=int, default=100_000, help="of each kind")
    p.add_argument("--seed", type=int, default=0, help="the uniform sample is the certificate's for this seed")
    p.add_argument("--name", default="sample_families", help="results file name under bench/results/")
    args = p.parse_args()
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.verify.certify import operand_chunks
    from hexadd.verify.verdicts import head1_margin
    from hexadd.data.encoding import ProblemEncoder, encode_pairs
    from hexadd.inference.loading import load_model
    from hexadd.common import rng
    from hexadd.data.samplers import family_pairs

    torch.set_num_threads(os.cpu_count())
    model, tok = load_model(args.model)
    model.eval()
    c = model.config
    encoder = ProblemEncoder(tok, c.base, c.reverse, c.max_operand)

    def margins(pairs):
        return head1_margin(model, encode_pairs(tok, encoder, pairs[:, 0], pairs[:, 1], c.base, c.reverse))

    lo, hi = c.min_operand, c.max_operand
    uniform = torch.cat([torch.stack([a, b], 1) for a, b in operand_chunks(lo, hi, args.problems, args.seed, 4096)])
    kinds = {"uniform": uniform,
             "carry_runs": family_pairs(lo, hi, args.problems, c.base, {"carry": 1.0}, rng.generator(args.seed, rng.FRESH)),
             "column_sums": family_pairs(lo, hi, args.problems, c.base, {"sums": 1.0}, rng.generator(args.seed, rng.FRESH))}
    result = {"model": args.model, "problems": args.problems, "seed": args.seed, "kinds": {}}
    for kind, pairs in kinds.items():
        m = torch.cat([margins(pairs[i:i + 4096]) for i in range(0, len(pairs), 4096)])
        below = {f"margin_below_{t}": int((m < t).sum()) for t in THRESHOLDS}
        thinnest = [f"{int(pairs[i, 0])}+{int(pairs[i, 1])} ({float(m[i]):.2f})" for i in torch.argsort(m)[:8]]
        result["kinds"][kind] = {"wrong": below["margin_below_0"], **below, "thinnest": thinnest}
        print(f"{kind}: {below['margin_below_0']} wrong of {len(pairs):,}; margin below "
              + ", ".join(f"{t}: {below[f'margin_below_{t}']}" for t in THRESHOLDS[1:]) + f"; thinnest {thinnest[:3]}")
    save(args.name, result, config=model_config(args.model))


if __name__ == "__main__":
    main()
