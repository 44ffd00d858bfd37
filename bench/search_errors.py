#!/usr/bin/env python3
"""How fast the error search (hexadd/verify/search.py) finds a model's wrong problems, against sampling.
For each model: a gate sample as the trainer draws it (`--gate` problems, carry runs and column sums as the
default config mixes them), how many it gets wrong, then `--rounds` rounds of the local search from the
sample's thinnest problems: wrong problems found, problems evaluated, seconds. Compare with the model's
certificate (a uniform sample of the whole range): a search that finds errors in a model the certificate
calls exact, or none in one it does not, says how far the stopping rule can lean on it."""
import argparse
import os
import time

from common import model_config, save


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("models", nargs="+", help="model folders")
    p.add_argument("--gate", type=int, default=100_000, help="problems in the gate sample the search starts from")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="the gate sample and the search's draws, as the trainer's seed")
    p.add_argument("--step", type=int, default=0, help="... and step (the trainer's own gate: its seed and stopping step)")
    p.add_argument("--name", default="search_errors", help="results file name under bench/results/")
    args = p.parse_args()
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.common import rng
    from hexadd.config.schema import ChecksConfig
    from hexadd.data.encoding import ProblemEncoder
    from hexadd.inference.loading import load_model
    from hexadd.data.samplers import family_pairs
    from hexadd.verify.verdicts import pair_verdicts
    from hexadd.verify.search import search

    torch.set_num_threads(os.cpu_count())
    checks = ChecksConfig()
    results = []
    for path in args.models:
        model, tok = load_model(path)
        model.eval()
        c = model.config
        encoder = ProblemEncoder(tok, c.base, c.reverse, c.max_operand)
        evaluated = 0

        def margins_of(pairs):
            nonlocal evaluated
            evaluated += len(pairs)
            return pair_verdicts(model, tok, encoder, pairs, 4096)[1]

        t0 = time.perf_counter()
        pairs = family_pairs(c.min_operand, c.max_operand, args.gate, c.base, checks.families,
                             rng.generator(args.seed, rng.GATE, args.step))
        m = margins_of(pairs)
        t1 = time.perf_counter()
        g = rng.generator(args.seed, rng.SEARCH, args.step)
        found, found_m = search(margins_of, pairs, m, args.rounds, c.min_operand, c.max_operand, c.base, g)
        t2 = time.perf_counter()
        wrong = found[found_m <= 0]
        r = {"model": path, "gate": args.gate, "gate_wrong": int((m <= 0).sum()), "gate_thinnest": float(m.min()),
             "gate_s": round(t1 - t0, 1), "rounds": args.rounds, "search_evaluated": evaluated - args.gate,
             "search_wrong": len(wrong), "search_thinnest": float(found_m.min()) if len(found) else None,
             "search_s": round(t2 - t1, 1), "wrong_examples": [f"{a}+{b}" for a, b in wrong[:8].tolist()]}
        results.append(r)
        print(f"{path}: gate {r['gate_wrong']} wrong of {args.gate:,} ({r['gate_s']} s, thinnest {r['gate_thinnest']:.2f}); "
              f"search {r['search_wrong']} wrong of {r['search_evaluated']:,} ({r['search_s']} s, thinnest "
              f"{r['search_thinnest']:.2f}) {r['wrong_examples'][:3]}", flush=True)
    from hexadd.config.files import to_dict
    config = {"models": {path: model_config(path) for path in args.models},
              "gate": to_dict(checks)}  # the gate's families are the default ChecksConfig's
    save(args.name, {"seed": args.seed, "step": args.step, "models": results}, config=config)


if __name__ == "__main__":
    main()
