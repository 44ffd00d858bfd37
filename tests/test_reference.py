"""Checkpoints in the reference project's published format load without its code and give its answers."""
import json

import pytest
import torch
from tokenizers import Tokenizer, models
from transformers import GPT2Config, GPT2LMHeadModel

from conftest import run_script
from hexadd.inference.decoding import decode
from hexadd.inference.loading import load_model
from hexadd.data.numbers import format_prompt

# Its alphabet holds a ':' (from its data files) between the decimal and the letter digits.
ALPHABET = ["<|pad|>", "<|UNK|>", "+", *"0123456789", ":", *"ABCDEF"]
# Stored digit ids as published: the ':' is inside the range and B..F are outside it. Used as they are.
BLOCK_DIGIT_IDS = list(range(3, 15))


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    vocab = {t: i for i, t in enumerate(ALPHABET)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<|UNK|>"))
    tok.save(str(d / "tokenizer.json"))
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(ALPHABET), n_positions=16, n_embd=32, n_layer=2, n_head=2))
    gpt2.save_pretrained(d)
    config = json.loads((d / "config.json").read_text())
    config.update(model_type="custom-gpt2", architectures=["CustomGPT2LMHeadModel"], embedding={
        "embedding_type": "block", "block_digit_ids": BLOCK_DIGIT_IDS, "padding_digit_id": 1, "data_offset": 2,
        "fixed_pos_theta": 10000.0, "fixed_pos_scaling": 1.0, "fixed_pos_ntk_alpha": 1.0})
    (d / "config.json").write_text(json.dumps(config))
    return d, gpt2.eval(), vocab


def reference_answer(gpt2, vocab, prompt: str, max_tokens: int) -> list[str]:
    """The reference project's decoding, written out: block positions from the stored digit ids, full
    recompute each step, stop at the next `+` or at padding."""
    inverse = {i: t for t, i in vocab.items()}
    ids = [vocab[c] for c in prompt]
    out = []
    for _ in range(max_tokens):
        positions, run = [], 0
        for i in ids:
            run = run + 1 if i in BLOCK_DIGIT_IDS else 0
            positions.append(run)
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = gpt2(x, attention_mask=torch.ones_like(x), position_ids=torch.tensor([positions])).logits
        nxt = int(logits[0, -1].argmax())
        out.append(inverse[nxt])
        if inverse[nxt] in ("+", "<|pad|>"):
            break
        ids.append(nxt)
    return out


def test_reference_checkpoint_gives_the_reference_answers(reference_dir):
    d, gpt2, vocab = reference_dir
    model, tok = load_model(str(d))
    assert model.config.n_predict == 1 and model.config.digit_token_ids == BLOCK_DIGIT_IDS
    assert model.config.max_offset == 2 and model.config.position_scheme == "block"
    x = torch.tensor([[vocab[c] for c in "+1B+9:3+"]])
    # Same logits as the plain GPT-2 given the reference's positions (`B` is outside the stored digit ids).
    pos = torch.tensor([[0, 1, 0, 0, 1, 2, 3, 0]])
    assert torch.equal(model.position_ids(x, torch.ones_like(x)), pos)
    assert torch.allclose(model(x).logits, gpt2(x, attention_mask=torch.ones_like(x), position_ids=pos).logits, atol=1e-5)

    pairs = [(1234, 5678), (4095, 1), (0, 0), (9999, 9999), (171, 2748), (43981, 7)]
    ours = decode(model, tok, pairs, "single", batch_size=4)
    for (a, b), answer in zip(pairs, ours):
        limit = max(len(f"{a:X}"), len(f"{b:X}")) + 2
        expected = reference_answer(gpt2, vocab, format_prompt(a, b, 16), limit)
        if "<|UNK|>" in expected:  # ours also stops at an unknown token
            expected = expected[:expected.index("<|UNK|>") + 1]
        assert answer.text == "".join(expected)


def test_reference_checkpoint_through_the_command_line(reference_dir, tmp_path):
    d, _, _ = reference_dir
    proc = run_script("inference.py", "--model", str(d), "12+34", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    model, tok = load_model(str(d))
    (answer,) = decode(model, tok, [(12, 34)], "single")  # one head: the command line decodes the same way
    assert proc.stdout == f"12+34={answer.value if answer.value is not None else '?'}\n"
    assert (answer.value is None) == (f"note: 12+34: {answer.note}" in proc.stderr)
