#!/usr/bin/env python3
"""The any-length model: train on short operands (configs/anylength.yaml: 1..8 hex digits), measure exact match
on every pair of operand lengths up to four times longer, certify 0..9999 and bands of lengths up to 4,096
digits. Run it again to continue a stopped run; --push publishes the model folder like trainer.py's.

  python3 lengthgen.py                                   (= make anylength)
  python3 lengthgen.py --push user/hexadd-anylength
  python3 lengthgen.py --set runtime.device=cuda --set lengthgen.dir=runs/anylength-gpu
"""
import signal

from hexadd.common import cli
from hexadd.config.files import load
from hexadd.common.errors import ModelError
from hexadd.experiments.lengthgen import LengthgenConfig


def main():
    p = cli.parser(__doc__)
    cli.add_config_args(p, "configs/anylength.yaml")
    p.add_argument("--push", metavar="REPO_ID", help="after the run, upload the model folder to this Hub repo")
    args = p.parse_args()
    cfg = load(LengthgenConfig, args.config, args.overrides)
    if args.push:
        from huggingface_hub import get_token
        from hexadd.hub.download import check_repo_id
        check_repo_id(args.push, ModelError)
        if get_token() is None:  # say so before training, not after it
            raise ModelError("--push: not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN")
    from hexadd.common.devices import pick_device
    pick_device(cfg.runtime.device)  # a missing GPU is refused before any work
    # A scheduler's SIGTERM stops the run like Ctrl-C: with a checkpoint, and the grid cells measured so far.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from hexadd.experiments.lengthgen import run
    run(cfg)
    if args.push:
        from hexadd.hub.publish import push
        push(f"{cfg.lengthgen.dir}/model", args.push)


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
