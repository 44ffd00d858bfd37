#!/usr/bin/env python3
"""Every problem of a model's trained range (or a seeded sample of N), teacher-forced, on the best device here:
the exhaustive certificate. On one H200 the 10^8 problems of 0..9999 take about two minutes; on a CPU, hours.

    python3 bench/certify_all.py --model model --name certify-all-default
    python3 bench/certify_all.py --model runs/anylength/model --range 0 9999 --bands 2500 --name certify-all-anylength
"""
import argparse
import os
import sys
from pathlib import Path

from common import ROOT, model_config, save


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(ROOT / "model"), help="model folder")
    p.add_argument("--name", required=True, help="results file name under bench/results/")
    p.add_argument("--n", type=int, default=None, help="a seeded sample of N problems instead of every one")
    p.add_argument("--batch-size", type=int, default=100_000, help="problems a forward pass")
    p.add_argument("--range", nargs=2, type=int, metavar=("LO", "HI"), help="operands LO..HI (default: the trained range)")
    p.add_argument("--bands", type=int, default=0, help="then, for a block-window model, N problems a family and band")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="also copy the results file and the wrong problems here")
    args = p.parse_args()
    import torch
    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.verify.certificate import report
    from hexadd.verify.certify import certify
    from hexadd.common.devices import pick_device
    from hexadd.inference.loading import load_model

    device = pick_device(args.device)
    torch.set_num_threads(os.cpu_count())
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as trained: TF32 would change the logits
        torch.backends.cudnn.allow_tf32 = False
    model, tok = load_model(args.model, device=device)
    wrong_path = Path(args.out or ".") / f"{args.name}-wrong.txt"
    wrong_path.parent.mkdir(parents=True, exist_ok=True)
    cert = certify(model, tok, args.n, seed=0, batch_size=args.batch_size, wrong_path=wrong_path,
                   operands=tuple(args.range) if args.range else None)
    print(report(cert), flush=True)
    d = cert.to_json()
    bands = None
    if args.bands:
        from hexadd.verify.bands import certify_bands, locality
        from hexadd.verify.bands import report as bands_report
        bands = {"per_family": args.bands, "bands": certify_bands(model, tok, args.bands, progress=False),
                 "locality": locality(model, tok)}
        print(bands_report(bands), flush=True)
    out = save(args.name, {"model": str(args.model),
                           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                           "certificate": d, "bands": bands}, config=model_config(args.model))
    if args.out:
        (Path(args.out) / out.name).write_text(out.read_text())


if __name__ == "__main__":
    sys.exit(main())
