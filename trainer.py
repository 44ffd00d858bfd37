#!/usr/bin/env python3
"""Train the GPT-2 adder on the generated problems and save the best model in Hugging Face format."""
from hexadd import cli
from hexadd.config import TrainConfig, load


def main():
    p = cli.parser(__doc__)
    cli.add_config_args(p, "train_config.yaml")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output.run_dir")
    p.add_argument("--stop-after", type=int, metavar="STEPS", help="stop at this step with a checkpoint (resume later)")
    args = p.parse_args()
    cfg = load(TrainConfig, args.config, args.overrides)

    from transformers.utils import logging
    logging.disable_progress_bar()
    from hexadd.training import train  # heavy imports only after the config is known to be good

    result = train(cfg, resume=args.resume, stop_after=args.stop_after)
    best = result["best"]
    print(f"trained {result['steps']} steps in {result['train_time_s']:.1f}s ({result['samples_per_s']:.0f} samples/s); "
          f"best held-out exact match {best['accuracy']:.2%} at step {best['step']}; saved to {cfg.output.model_dir}/")


if __name__ == "__main__":
    cli.run(main)
