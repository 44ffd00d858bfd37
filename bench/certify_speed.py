#!/usr/bin/env python3
"""Certification throughput on this machine: problems/s of `certify` on the trained model in model/, against
the forward-pass FLOP limit measured in the same run (2 x parameters x padded tokens per problem at the fp32
matmul peak, read before and after each configuration, the higher reading kept; every fraction is also given
against the highest reading of the run), with the eager and sdpa attention kernels side by side, 256 rows a
forward pass (what certify uses on a CPU) against one pass per 4,096-problem chunk, and the last block run
from the answer on (what certify does) against the whole last block."""
import argparse
import os

from common import ROOT, matmul_peak, model_config, save


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(ROOT / "model"))
    p.add_argument("--problems", type=int, default=200_000)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=2, help="times the whole sequence of configurations runs (the machine drifts)")
    args = p.parse_args()
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.verify import certify as certify_module
    from hexadd.verify.certify import certify
    from hexadd.data.encoding import ProblemEncoder
    from hexadd.inference.loading import load_model

    torch.set_num_threads(os.cpu_count())
    model, tok = load_model(args.model)
    c = model.config
    tokens = ProblemEncoder(tok, c.base, c.reverse, c.max_operand).seq_len - 1  # the last token is only a target
    params = sum(p.numel() for p in model.parameters())
    rows, peaks = {}, []
    whole_last_block = lambda ids, mask, start: model(ids, attention_mask=mask).logits[:, start:]  # noqa: E731
    configurations = (("eager", certify_module.CPU_ROWS, False), ("eager", certify_module.CPU_ROWS, True),
                      ("sdpa", certify_module.CPU_ROWS, False), ("eager", args.batch_size, False))
    for round_, (attn, per_pass, whole) in ((r, x) for r in range(1, args.rounds + 1) for x in configurations):
        model.set_attn_implementation(attn)
        certify_module.CPU_ROWS, default_rows = per_pass, certify_module.CPU_ROWS
        if whole:
            model.head1_logits_from = whole_last_block
        before = matmul_peak("float32")
        cert = certify(model, tok, args.problems, seed=1, batch_size=args.batch_size, progress=False)
        peak = max(before, matmul_peak("float32"))  # the higher reading, before or after: the stricter limit
        certify_module.CPU_ROWS = default_rows
        vars(model).pop("head1_logits_from", None)
        peaks.append(peak)
        limit = peak / (2 * params * tokens)
        name = f"{attn}, {per_pass} rows a pass" + (", whole last block" if whole else "") + f" (round {round_})"
        rows[name] = {"problems_per_s": cert.problems_per_s, "fp32_peak_flops": peak, "limit_problems_per_s": limit,
                      "fraction_of_limit": cert.problems_per_s / limit, "wrong": cert.wrong, "n": cert.n}
        print(f"{name}: {cert.problems_per_s:,.0f} problems/s; fp32 peak {peak / 1e9:.1f} GFLOP/s -> limit "
              f"{limit:,.0f} problems/s ({params:,} parameters x {tokens} tokens); {cert.problems_per_s / limit:.0%} "
              f"of it; {cert.wrong} wrong of {cert.n:,}", flush=True)
    top = max(peaks) / (2 * params * tokens)
    for name, r in rows.items():
        r["fraction_of_highest_limit"] = r["problems_per_s"] / top
    print(f"against the highest peak of the run ({max(peaks) / 1e9:.1f} GFLOP/s): "
          + "; ".join(f"{name} {r['fraction_of_highest_limit']:.0%}" for name, r in rows.items()))
    save("certify_speed", config=model_config(args.model), result={"model": args.model, "parameters": params, "tokens_per_problem": tokens,
                           "batch_size": args.batch_size, "rounds": args.rounds, "runs": rows})


if __name__ == "__main__":
    main()
