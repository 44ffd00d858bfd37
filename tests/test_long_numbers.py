"""Numbers far beyond 64 bits: encoding, certification, decoding and the length grid agree with Python's sums.

A model that knows the answers (tests/oracle.py) stands in for a trained one, so every check here is exact,
and planted errors show that the checks do find what is wrong."""
import random

import pytest
import torch

from oracle import oracle
from hexadd.verify.certify import certify, operand_chunks
from hexadd.config.schema import DataConfig, TrainConfig
from hexadd.config.files import load
from hexadd.data import dataset
from hexadd.data.generate import generate
from hexadd.inference.decoding import decode
from hexadd.data.encoding import ProblemEncoder, digits_to_int, encode_pairs, int_digits
from hexadd.common.errors import ConfigError, DataError
from hexadd.verify.grids import cell_operands, grid_accuracy, grid_cells
from hexadd.data.numbers import decode_number, encode_number, num_digits
from hexadd.data.tokenizer import train_tokenizer

BIG = 16**40 - 1  # 40 hex digits, 160 bits


def wrong_first_digit(a, b, answer):
    """Planted error: the answer's first digit is off when a ends in 7."""
    return ("1" if answer[0] == "0" else "0") + answer[1:] if a % 16 == 7 else answer


def test_40_digit_problems_built_from_digits_equal_the_tokenizer():
    tok = train_tokenizer([])
    r = random.Random(0)
    a = [r.randint(0, BIG) for _ in range(60)] + [BIG, BIG, 0, 16**39]
    b = [r.randint(0, 16**r.randint(1, 40)) for _ in range(60)] + [BIG, 1, 0, 16**39 - 1]
    digits, lengths = int_digits(a, 16)
    assert [digits_to_int(d, 16) for d in digits.tolist()] == a
    assert lengths.tolist() == [num_digits(x, 16) for x in a]
    built = encode_pairs(tok, ProblemEncoder(tok, 16, True, BIG), a, b, 16, True)
    by_tokenizer = encode_pairs(tok, None, a, b, 16, True)
    for name in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(getattr(built, name), getattr(by_tokenizer, name)), name


def test_decoding_40_digit_sums():
    model, tok = oracle(BIG)
    pairs = [(BIG, 1), (BIG, BIG), (0, 0), (16**39, 16**39 - 1), (5, BIG), (123, 456)]
    r = random.Random(1)
    pairs += [(r.randint(0, BIG), r.randint(0, 16**r.randint(1, 40))) for _ in range(10)]
    answers = decode(model, tok, pairs, "single", batch_size=6)  # prompts of different lengths in one batch
    assert [x.value for x in answers] == [a + b for a, b in pairs]
    assert answers[0].text == "0" * 40 + "1+"


def test_certify_beyond_int64_is_exact(tmp_path):
    model, tok = oracle(BIG)
    cert = certify(model, tok, 200, seed=3, batch_size=64, progress=False)
    assert (cert.n, cert.wrong, cert.exhaustive) == (200, 0, False)
    assert sum(t for _, t in cert.by_length.values()) == 200 and max(max(k) for k in cert.by_length) == 40

    model, tok = oracle(BIG, flaw=wrong_first_digit)
    cert = certify(model, tok, 200, seed=3, batch_size=64, wrong_path=tmp_path / "wrong.txt", progress=False)
    sampled = [(x, y) for a, b in operand_chunks(0, BIG, 200, 3, 64) for x, y in zip(a, b)]
    planted = {(a, b) for a, b in sampled if a % 16 == 7}
    assert cert.wrong == len(planted) > 0
    found = {}
    for line in (tmp_path / "wrong.txt").read_text().splitlines():  # a+b=answer (expected c), answered by decoding
        problem, rest = line.split("=")
        a, b = map(int, problem.split("+"))
        found[(a, b)] = (int(rest.split(" ")[0]), int(rest.split("expected ")[1].rstrip(")")))
    assert set(found) == planted
    for (a, b), (answer, expected) in found.items():
        assert expected == a + b
        assert answer == decode_number(wrong_first_digit(a, b, encode_number(a + b, 16) + "+")[:-1], 16)


def test_length_grid_is_exact_and_sorts_the_errors():
    def flaw(a, b, answer):
        if a % 16 == 9:
            return answer[:2] + "+"   # stops after two digits
        return wrong_first_digit(a, b, answer)

    n = 8
    model, tok = oracle(16**n - 1, n_positions=n + 2)
    cells = grid_cells(n, 6, 10)
    done = grid_accuracy(model, tok, cells, seed=2, batch_size=16, progress=False, log=lambda *_: None)
    assert set(done) == {(i, j) for i in range(1, n + 1) for j in range(1, n + 1)}
    assert all(c.correct == c.total == (10 if i == j else 6) for (i, j), c in done.items())

    model, tok = oracle(16**n - 1, n_positions=n + 2, flaw=flaw)
    done = grid_accuracy(model, tok, cells, seed=2, batch_size=16, progress=False, log=lambda *_: None)
    seen = [0, 0, 0, 0]
    for (i, j), cell in done.items():
        da, _, db, _ = cell_operands(i, j, cell.total, 16, 2)
        expect = [0, 0, 0, 0]  # right, wrong digit, stopped early, wrong at the end
        for x, y in zip(da.tolist(), db.tolist()):
            a, b = digits_to_int(x, 16), digits_to_int(y, 16)
            right = encode_number(a + b, 16) + "+"
            written = flaw(a, b, right) + "+" * len(right)
            d = next((k for k in range(len(right)) if written[k] != right[k]), None)
            kind = 0 if d is None else 3 if d >= max(i, j) else 2 if written[d] == "+" else 1
            expect[kind] += 1
        got = [cell.correct, cell.wrong_digit, cell.stopped_early, cell.wrong_end]
        assert got == expect, (i, j)
        seen = [s + g for s, g in zip(seen, got)]
    assert all(seen), seen


def test_data_by_digit_count_beyond_int64(tmp_path):
    cfg = load(DataConfig, None, [f"output.dir={tmp_path}", "numbers.min_digits=30", "numbers.max_digits=40",
                                  "problems.count=400"])
    assert (cfg.numbers.min_operand, cfg.numbers.max_operand) == (16**29, BIG)
    generate(cfg)
    train = dataset.load(tmp_path)["train"]
    problems = [(int(a), int(b)) for a, b in zip(train["a"], train["b"])]
    lengths = {num_digits(x, 16) for p in problems for x in p}
    assert lengths == set(range(30, 41))  # drawn uniformly by length: every length shows up in 400 problems
    # Uniform sampling over a range past sys.maxsize works too.
    generate(load(DataConfig, None, [f"output.dir={tmp_path}", "numbers.min_digits=30", "numbers.max_digits=40",
                                     "problems.count=50", "problems.sampling=uniform"]))
    # Training refuses sums beyond int64 in one line, before the tokenizer is even looked for.
    from hexadd.train.prepare import prepare
    train = load(TrainConfig, None, [f"data.dir={tmp_path}", f"tokenizer.dir={tmp_path}/none", "runtime.device=cpu"])
    with pytest.raises(DataError, match="at most 15 digits"):
        prepare(train)


@pytest.mark.parametrize("overrides,key", [(["numbers.min_digits=2"], "numbers.max_digits"),
                                           (["numbers.min_digits=3", "numbers.max_digits=2"], "numbers.min_digits"),
                                           (["numbers.min_digits=0", "numbers.max_digits=2"], "numbers.min_digits"),
                                           (["numbers.max_digits=4", "numbers.min_digits=1", "numbers.max_operand=5"],
                                            "numbers.max_digits")])
def test_digit_range_config_errors(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load(DataConfig, None, overrides)
