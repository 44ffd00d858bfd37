#!/usr/bin/env python3
"""Train the BPE tokenizer on the training problems and save it to tokenizer.dir (trainer.py reads it from there)."""
from pathlib import Path

from hexadd.common import cli
from hexadd.config.schema import TrainConfig
from hexadd.config.files import load
from hexadd.data import dataset
from hexadd.common.errors import DataError
from hexadd.data.tokenizer import digit_token_ids, train_tokenizer


def main():
    p = cli.parser(__doc__)
    cli.add_config_args(p, "train_config.yaml")
    args = p.parse_args()
    cfg = load(TrainConfig, args.config, args.overrides)
    lines = dataset.load(dataset.resolve(cfg.data))["train"]["text"][:]
    tok = train_tokenizer(lines, cfg.tokenizer.vocab_size)
    decoded = tok.batch_decode(tok(lines)["input_ids"])
    bad = next((line for line, back in zip(lines, decoded) if back != line), None)
    if bad is not None:
        raise DataError(f"the trained tokenizer does not round-trip {bad!r}")
    out = Path(cfg.tokenizer.dir)
    tok.save_pretrained(str(out))
    print(f"tokenizer: {len(tok)} tokens ({len(digit_token_ids(tok))} digit tokens), "
          f"round-trips all {len(lines):,} training lines; saved to {out}/")


def entry():
    cli.run(main)


if __name__ == "__main__":
    entry()
