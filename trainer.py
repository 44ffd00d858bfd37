#!/usr/bin/env python3
"""Train the GPT-2 adder on the generated problems and save the best model in Hugging Face format."""
import signal

from hexadd.common import cli
from hexadd.config.schema import TrainConfig
from hexadd.config.files import load
from hexadd.common.errors import ModelError


def main():
    p = cli.parser(__doc__)
    cli.add_config_args(p, "train_config.yaml")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output.run_dir")
    p.add_argument("--stop-after", type=int, metavar="STEPS", help="stop at this step with a checkpoint (resume later)")
    p.add_argument("--push", metavar="REPO_ID", help="after training, upload the model folder to this Hub repo")
    args = p.parse_args()
    if args.push:
        args.overrides += [f"hub.repo_id={args.push}", "hub.push=true"]
    cfg = load(TrainConfig, args.config, args.overrides)
    from hexadd.train.tracking import check_available
    check_available(cfg.runtime.log_with)
    if cfg.hub.push:
        from huggingface_hub import get_token
        if get_token() is None:  # say so before training, not after it
            raise ModelError("--push: not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN")

    # What can be refused in a second is refused before the heavy imports and the data load.
    from pathlib import Path
    from hexadd.common.devices import pick_device
    pick_device(cfg.runtime.device)
    from hexadd.data.dataset import load_meta, resolve
    load_meta(resolve(cfg.data))
    if not (Path(cfg.tokenizer.dir) / "tokenizer.json").is_file():
        raise ModelError(f"{cfg.tokenizer.dir}/tokenizer.json not found: run tokenizer.py first")
    if args.resume:
        from hexadd.train.checkpoints import check_resumable
        from hexadd.config.files import to_dict
        check_resumable(Path(cfg.output.run_dir), to_dict(cfg))

    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.train.loop import train  # heavy imports only after the config is known to be good

    # A scheduler's SIGTERM stops the run like Ctrl-C: with a checkpoint to resume from.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = train(cfg, resume=args.resume, stop_after=args.stop_after)
    if not result["main_process"]:  # the other processes of a distributed run stay quiet
        return
    best = result["best"]
    if best["step"] == 0:
        print(f"trained {result['steps']} steps; no evaluation yet, so no model saved")
        return
    print(f"trained {result['steps']} steps in {result['train_time_s']:.1f}s ({result['samples_per_s']:.0f} samples/s), "
          f"stopped by {result['stopped_by']}; model of step {best['step']} (held-out exact match {best['accuracy']:.2%}) "
          f"saved to {cfg.output.model_dir}/")
    if cfg.hub.push:
        from hexadd.hub.publish import push
        push(cfg.output.model_dir, cfg.hub.repo_id, cfg.hub.private)


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
