"""Certification: the tensor-built problems equal the tokenizer's, planted errors are found and counted,
and the bound is right."""
import json
import math

import pytest
import torch

from conftest import assert_one_line_error, run_main, run_script
from hexadd.verify.certificate import upper_bound_95
from hexadd.verify.certify import certify, operand_chunks
from hexadd.verify.verdicts import answer_margin, head1_correct, head1_margin
from hexadd.inference.decoding import decode
from hexadd.data.encoding import ProblemEncoder, carry_chain, operand_digits
from hexadd.inference.loading import load_model
from hexadd.data.numbers import format_problem
from hexadd.data.tokenizer import train_tokenizer


@pytest.mark.parametrize("base,reverse,hi", [(16, True, 9999), (10, True, 99), (10, False, 999), (2, True, 300),
                                             (7, False, 5000), (16, True, 2**40)])
def test_tensor_problems_equal_the_tokenizer(base, reverse, hi):
    tok = train_tokenizer([format_problem(12, 34, base, reverse)])
    encoder = ProblemEncoder(tok, base, reverse, hi)
    g = torch.Generator().manual_seed(base)
    a, b = torch.randint(0, hi + 1, (400,), generator=g), torch.randint(0, hi + 1, (400,), generator=g)
    a[:3], b[:3] = torch.tensor([0, hi, hi]), torch.tensor([0, hi, 1])
    enc = encoder(a, b)
    for i in range(len(a)):
        line = format_problem(int(a[i]), int(b[i]), base, reverse)
        ids = tok.encode(line)
        n = int(enc.attention_mask[i].sum())
        assert enc.input_ids[i, :n].tolist() == ids, line
        assert (enc.input_ids[i, n:] == tok.pad_token_id).all()
        answer = line.rstrip("+").rsplit("+", 1)[1] + "+"
        assert tok.decode([t for t in enc.labels[i].tolist() if t != -100]) == answer


def test_encoder_refuses_merged_digits():
    tok = train_tokenizer([format_problem(a, a, 10) for a in range(100, 200)], vocab_size=40)
    assert ProblemEncoder.merges_digits(tok)
    assert not ProblemEncoder.merges_digits(train_tokenizer(["+1+2+3+"]))


def test_certify_encodes_merged_digits_as_the_tokenizer_does(monkeypatch):
    """A BPE tokenizer writes `+01+` as `+`, `01`, `+`: certification must feed the model those tokens."""
    import hexadd.verify.certify
    from hexadd.modeling.model import HexAddConfig, HexAddForCausalLM
    from hexadd.data.tokenizer import digit_token_ids
    tok = train_tokenizer([format_problem(a, b, 10) for a in range(100) for b in range(0, 100, 7)], vocab_size=40)
    assert ProblemEncoder.merges_digits(tok)
    model = HexAddForCausalLM(HexAddConfig(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=16,
                                           pad_token_id=tok.pad_token_id, n_predict=1, base=10, max_operand=99,
                                           digit_token_ids=digit_token_ids(tok)))
    fed = []
    real = hexadd.verify.certify.head1_correct
    monkeypatch.setattr(hexadd.verify.certify, "head1_correct", lambda m, enc, rows=None: fed.append(enc) or real(m, enc, rows))
    cert = certify(model, tok, 300, seed=2, batch_size=100, progress=False)
    assert cert.n == 300 and len(fed) == 3
    a, b = next(operand_chunks(0, 99, 300, 2, 100))
    for i in range(100):
        ids = tok.encode(format_problem(int(a[i]), int(b[i]), 10))
        assert fed[0].input_ids[i, :len(ids)].tolist() == ids
        assert fed[0].attention_mask[i].sum() == len(ids)


def test_upper_bound():
    for n in (1000, 10**5, 10**8):  # the rule of three
        assert upper_bound_95(0, n) == pytest.approx(3 / n, rel=0.003)
    # Clopper-Pearson: the rate at which seeing at most k errors in n has probability 5%.
    for k, n in ((1, 100), (10, 1000), (207, 10**8)):
        p = upper_bound_95(k, n)
        assert p > k / n
        # P(at most k errors) at p, summed in log space in plain Python: exact at n = 10^8 too.
        log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
                     + (n - i) * math.log1p(-p) for i in range(k + 1)]
        top = max(log_terms)
        cdf = math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms)
        assert cdf == pytest.approx(0.05, abs=1e-6)
    assert upper_bound_95(1, 100) == pytest.approx(0.046560, rel=1e-4)
    assert upper_bound_95(5, 5) == 1.0 and upper_bound_95(0, 0) == 1.0


def test_carry_chain():
    a = torch.tensor([0xFFF, 0x0F0F, 0x123, 0x8, 0xFF0])
    b = torch.tensor([0x1, 0x0101, 0x111, 0x8, 0x010])
    (da, _), (db, _) = operand_digits(a, 16, 4), operand_digits(b, 16, 4)
    assert carry_chain(da, db, 16).tolist() == [3, 1, 0, 1, 2]
    # Digit arrays of any length: 16^40 - 1 + 1 carries through all 40 digits.
    (da, _), (db, _) = operand_digits([16**40 - 1, 0xF0F], 16, 40), operand_digits([1, 0x101], 16, 40)
    assert carry_chain(da, db, 16).tolist() == [40, 1]


def test_chunks_do_not_depend_on_the_number_of_processes():
    one = torch.cat([a * 1000 + b for a, b in operand_chunks(0, 999, 10_000, 3, 1024)])
    two = [torch.cat([a * 1000 + b for a, b in operand_chunks(0, 999, 10_000, 3, 1024, r, 2)]) for r in (0, 1)]
    assert sorted(one.tolist()) == sorted(torch.cat(two).tolist()) and len(one) == 10_000
    every = torch.cat([a * 100 + b for a, b in operand_chunks(0, 99, None, 0, 777)])
    assert every.tolist() == list(range(10_000))


def plant_errors(model, tok, digit: str):
    """Make `model` wrong on every problem whose a ends in `digit` (base 10, reversed: a's first written digit).

    Hooks make head 1 write padding where the answer's first digit belongs (after the third `+`), in the
    teacher-forced pass and in decoding alike."""
    sep, bad_id, pad = tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids(digit), tok.pad_token_id
    seen = {}

    def remember(_, args):  # the token embedding sees the ids, with or without a number embedding
        seen["ids"] = args[0]

    def flip(_, __, logits):
        ids = seen["ids"]
        if ids.shape[1] < 3:  # a decoding step after the prompt: nothing to plant there
            return logits
        count = (ids == sep).long().cumsum(1)
        first = (ids == sep).long().argmax(1)                       # the row's first `+`
        bad = ids.gather(1, (first + 1)[:, None])[:, 0] == bad_id   # a's first written digit
        slot = (count == 3) & (ids == sep) & bad[:, None]           # (N, T)
        slot = slot[:, slot.shape[1] - logits.shape[1]:]            # a check computes the last positions only
        logits = logits.clone()
        forced = torch.zeros_like(logits[slot])
        forced[:, pad] = 1.0
        logits[slot] = forced
        return logits

    return [model.transformer.wte.register_forward_pre_hook(remember),
            model.lm_head.register_forward_hook(flip)]


def wrong_set(path):
    return {tuple(map(int, line.split("=")[0].split(" ")[0].split("+"))) for line in path.read_text().splitlines()}


def test_certify_finds_planted_errors(tiny_run, tmp_path):
    model, tok = load_model(str(tiny_run / "model"))
    base = certify(model, tok, None, wrong_path=tmp_path / "base.txt", progress=False)
    assert base.exhaustive and base.n == 100 * 100 and base.seed is None
    hooks = plant_errors(model, tok, "7")
    planted = certify(model, tok, None, wrong_path=tmp_path / "planted.txt", progress=False)
    for h in hooks:
        h.remove()
    planted_set = {(a, b) for a in range(7, 100, 10) for b in range(100)}
    # Every planted problem is found, and elsewhere the wrong problems are the model's own.
    assert wrong_set(tmp_path / "planted.txt") == planted_set | wrong_set(tmp_path / "base.txt")
    got = wrong_set(tmp_path / "planted.txt")
    assert planted.wrong == len(got) and planted.error_rate == len(got) / 10_000
    assert planted.upper_95 > planted.error_rate
    # Decoding sees the planted error too: the answers in the file are wrong ones.
    lines = (tmp_path / "planted.txt").read_text().splitlines()
    assert all(line.split("=")[1].split(" ")[0] != line.split("expected ")[1].rstrip(")") for line in lines)
    assert sum(w for w, _ in planted.by_length.values()) == planted.wrong
    assert sum(t for _, t in planted.by_length.values()) == 10_000
    assert planted.by_length[(1, 1)][0] >= 10  # a = 7 with b = 0..9
    assert sum(w for w, _ in planted.by_carry_chain.values()) == planted.wrong
    # Sampled: the seed fixes the sample; the planted 10% shows within sampling noise.
    hooks = plant_errors(model, tok, "7")
    s1 = certify(model, tok, 5000, seed=1, progress=False)
    s2 = certify(model, tok, 5000, seed=1, progress=False)
    for h in hooks:
        h.remove()
    assert not s1.exhaustive and s1.n == 5000 and s1.wrong == s2.wrong and s1.seed == 1
    assert abs(s1.wrong - 5000 * planted.error_rate) < 5 * math.sqrt(5000 * planted.error_rate)


def test_teacher_forced_check_is_greedy_decoding(tiny_run):
    model, tok = load_model(str(tiny_run / "model"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the tiny model may be right on all of 0..99: a damaged copy gets some wrong
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1 * p.std())
    encoder = ProblemEncoder(tok, 10, True, 99)
    a, b = next(operand_chunks(0, 99, 3000, 11, 3000))
    ok = head1_correct(model, encoder(a, b))
    decoded = decode(model, tok, list(zip(a.tolist(), b.tolist())), "single")
    assert ok.tolist() == [d.value == d.a + d.b for d in decoded]
    assert 0 < int((~ok).sum()) < 1000  # some right, some wrong: both kinds of row are compared
    assert head1_correct(model, encoder(a, b), rows=7).tolist() == ok.tolist()  # passes of 7 rows, last one short
    margin = head1_margin(model, encoder(a, b), rows=7)
    assert (margin > 0).tolist() == ok.tolist()  # a positive margin is a right answer, in the same rows' order
    assert 0 < int(((margin > 0) & (margin < 1)).sum()) and torch.isfinite(margin).all()
    # Passes of 256 rows, shortest first, each as wide as its longest row: the same verdicts, in the rows' order.
    short = torch.randperm(3000, generator=torch.Generator().manual_seed(0))[:1000]
    a[short], b[short] = a[short] % 10, b[short] % 10
    enc = encoder(a, b)
    assert enc.attention_mask.sum(1).min() < enc.input_ids.shape[1]  # some rows end early: passes get narrower
    assert head1_correct(model, enc, rows=256).tolist() == head1_correct(model, enc, rows=3000).tolist()


def test_answer_margin_is_the_right_tokens_smallest_lead_over_the_answer():
    """Two rows of three positions, vocabulary of four; -100 marks a position outside the answer."""
    logits = torch.tensor([[[0., 5., 1., 2.], [9., 0., 0., 0.], [0., 0., 3., 2.5]],
                           [[1., 1., 4., 0.], [0., 2., 1., 0.], [7., 0., 0., 0.]]])
    labels = torch.tensor([[-100, 0, 2], [2, 3, -100]])
    # Row 0: leads 9 - 0 and 3 - 2.5 (position 0 is not in the answer); row 1: 4 - 1, then 0 - 2 (wrong).
    assert answer_margin(logits, labels).tolist() == [0.5, -2.0]


def test_certify_command_line(tiny_run, tmp_path):
    out = tmp_path / "cert"
    proc = run_script("inference.py", "--model", str(tiny_run / "model"), "--certify", "3000", "--seed", "5",
                      "--eval-dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cert = json.loads((out / "certificate.json").read_text())
    # 0..99 holds 10,000 problems, more than asked: a sample of 3,000.
    assert cert["n"] == 3000 and cert["exhaustive"] is False and cert["seed"] == 5
    assert cert["search"]["rounds"] == 10 and "error search (10 rounds" in proc.stdout  # unless told otherwise
    wrong = (out / "certificate_wrong.txt").read_text().splitlines()
    assert len(wrong) == cert["wrong"]
    assert f"({cert['wrong']:,} wrong)" in proc.stdout
    for line in wrong[:20]:  # `a+b=answer (expected c)`: the answer really is what the model says
        a_b, rest = line.split("=", 1)
        shown = run_main("inference.py", "--model", str(tiny_run / "model"), a_b, cwd=tmp_path).stdout.strip()
        assert shown == f"{a_b}={rest.split(' ')[0]}"
        break
    proc = run_main("inference.py", "--model", str(tiny_run / "model"), "--certify", "all", "--eval-dir", str(out),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "certificate.json").read_text())["n"] == 10_000
    assert_one_line_error(run_main("inference.py", "--model", str(tiny_run / "model"), "--certify", "lots",
                                     cwd=tmp_path), "--certify")
    assert_one_line_error(run_main("inference.py", "--model", str(tiny_run / "model"), "--certify", "--search", "-1",
                                     cwd=tmp_path), "--search: must be >= 0 rounds, got -1")
    assert "search" not in json.loads((out / "certificate.json").read_text())  # every problem checked: none
