"""The BPE tokenizer: trained with `tokenizers`, saved and loaded in Hugging Face format."""
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..common.errors import ModelError
from .numbers import DIGITS, SEP

PAD, UNK = "<|pad|>", "<|unk|>"


def _pre_tokenizer(merge_digits: bool):
    # `+` is always its own token, so no merge ever crosses a number boundary.
    split_sep = pre_tokenizers.Split(SEP, behavior="isolated")
    if merge_digits:
        return split_sep
    # Hex digits A-F are letters, which the Digits pre-tokenizer would leave in runs: isolate every character.
    return pre_tokenizers.Sequence([split_sep, pre_tokenizers.Split(Regex("."), behavior="isolated")])


def train_tokenizer(lines, vocab_size: int | None = None) -> PreTrainedTokenizerFast:
    """Train BPE on problem lines. vocab_size None: the alphabet only; an integer: digit merges up to that size."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = _pre_tokenizer(merge_digits=vocab_size is not None)
    tok.decoder = decoders.Fuse()  # no spaces between tokens
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size or 0,
        special_tokens=[PAD, UNK],
        initial_alphabet=[SEP, *DIGITS],  # every digit of every base, even ones the data lacks
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise ModelError(f"{path}/tokenizer.json not found: run tokenizer.py first")
    try:
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    except Exception as e:  # a corrupt file surfaces as many exception types
        raise ModelError(f"{path}/tokenizer.json could not be loaded: {type(e).__name__}") from None
    if tok.pad_token_id is None:
        raise ModelError(f"{path}: the tokenizer has no padding token")
    return tok


def digit_token_ids(tok) -> list[int]:
    """Ids of tokens made only of digits: these get block positions."""
    return sorted(i for t, i in tok.get_vocab().items() if t and all(c in DIGITS for c in t))


def separator_id(tok) -> int:
    sep = tok.convert_tokens_to_ids(SEP)
    if sep is None or sep == tok.unk_token_id:
        raise ModelError(f"the tokenizer has no {SEP!r} token")
    return sep


def check_tokenizer(tok, base: int) -> None:
    """Start-up check: every digit of `base` and `+` must be known tokens."""
    separator_id(tok)
    digits = {t for t in tok.get_vocab() if t and all(c in DIGITS for c in t)}
    missing = [d for d in DIGITS[:base] if d not in digits]
    if missing:
        raise ModelError(f"the tokenizer is missing digit tokens {', '.join(missing)} for base {base}")
