import json
import re
import shutil

import pytest
import torch

from conftest import assert_one_line_error, run_main, run_script
from hexadd.data import dataset
from hexadd.verify.verdicts import head1_correct
from hexadd.inference.decoding import check_fits, decode
from hexadd.data.encoding import ProblemEncoder
from hexadd.inference.loading import load_model
from hexadd.modeling.model import HexAddConfig, HexAddForCausalLM
from hexadd.data.numbers import decode_number, format_prompt, is_hex_problem, num_digits, show


def infer(tiny_run, *args, input=None, launch=False):
    """inference.py on the tiny model; in this process unless `launch` (one test starts it as a user would)."""
    return (run_script if launch else run_main)("inference.py", "--model", str(tiny_run / "model"), *args,
                                                 cwd=tiny_run, input=input)


@torch.no_grad()
def plain_greedy(model, tok, a: int, b: int) -> str:
    """Greedy decoding written out the long way, independent of decoding.py: the whole row through the model
    at every step (no cache, no drafts), head 1's argmax appended until the answer's closing `+`."""
    c = model.config
    ids = tok.encode(format_prompt(a, b, c.base, c.reverse))
    sep = tok.convert_tokens_to_ids("+")
    for _ in range(num_digits(a + b, c.base) + 3):
        row = torch.tensor([ids])
        mask = torch.ones_like(row)
        ids.append(int(model(row, attention_mask=mask, position_ids=model.position_ids(row, mask)).logits[0, -1].argmax()))
        if ids[-1] == sep:
            break
    text = "".join(tok.convert_ids_to_tokens(ids)).rsplit("+", 2)[1]
    try:
        return f"{a}+{b}={decode_number(text, c.base, c.reverse)}"
    except ValueError:
        return f"{a}+{b}=?"


def test_answers_in_decimal_one_line_each(tiny_run):
    """Every answer is the model's greedy answer, checked against greedy decoding written out the long way;
    the tiny model is about 98% right, so the sums are checked against Python's where it is."""
    problems = [(12, 34), (7, 5), (99, 99), (0, 0)]
    proc = infer(tiny_run, "12+34", "7 + 5", "99+99", "0+0", launch=True)
    assert proc.returncode == 0, proc.stderr
    model, tok = load_model(str(tiny_run / "model"))
    expected = [plain_greedy(model, tok, a, b) for a, b in problems]
    assert proc.stdout.splitlines() == expected
    assert all(re.fullmatch(r"\d+\+\d+=(\d+|\?)", line) for line in expected)
    right = [line == f"{a}+{b}={a + b}" for (a, b), line in zip(problems, expected)]
    assert right[0] and sum(right) >= 3, expected


@pytest.mark.parametrize("problem,fragment", [
    ("", "empty problem"), ("12+", "missing operand"), ("+5", "missing operand"), ("abc+1", "'abc' is not"),
    ("-3+4", "negative"), ("1.5+2", "decimals"), ("1+2+3", "two operands"),
    ("100+1", "trained on operands 0..99"),
])
def test_bad_problems_get_one_line_and_exit_2(tiny_run, problem, fragment):
    assert_one_line_error(infer(tiny_run, "1+1", problem), fragment)


def test_file_and_stdin_answer_good_lines_and_report_bad_ones(tiny_run):
    text = "1+2\nabc+1\n\n40 + 2\n5+\n"
    (tiny_run / "problems.txt").write_text(text)
    model, tok = load_model(str(tiny_run / "model"))
    expected = [f"{a.a}+{a.b}={'?' if a.value is None else a.value}" for a in decode(model, tok, [(1, 2), (40, 2)], "verified")]
    for args, stdin in ((["--file", str(tiny_run / "problems.txt")], None), (["--file", "-"], text)):
        proc = infer(tiny_run, *args, input=stdin)
        assert proc.returncode == 1
        assert proc.stdout.splitlines() == expected
        errors = proc.stderr.splitlines()
        assert errors[0].startswith("error: line 2:") and errors[1].startswith("error: line 5:")
    assert_one_line_error(infer(tiny_run, "--file", str(tiny_run / "nope.txt")), "no such file")


def test_missing_incomplete_and_uncached_models(tiny_run, tmp_path):
    proc = run_main("inference.py", "--model", str(tmp_path / "none"), "1+1", cwd=tmp_path)
    assert_one_line_error(proc, "not found")
    shutil.copytree(tiny_run / "model", tmp_path / "partial")
    (tmp_path / "partial" / "model.safetensors").unlink()
    proc = run_main("inference.py", "--model", str(tmp_path / "partial"), "1+1", cwd=tmp_path)
    assert_one_line_error(proc, "incomplete", "model.safetensors")
    proc = run_script("inference.py", "--model", "someone/not-cached-adder", "1+1", cwd=tmp_path)
    assert_one_line_error(proc, "someone/not-cached-adder is not in the local Hugging Face cache")


def test_verified_equals_single_with_fewer_passes(tiny_run):
    model, tok = load_model(str(tiny_run / "model"))
    from hexadd.data import dataset
    train = dataset.load(tiny_run / "data")["train"][:3000]
    pairs = list(zip(train["a"], train["b"]))
    single = decode(model, tok, pairs, "single", batch_size=700)
    verified = decode(model, tok, pairs, "verified", batch_size=500)
    assert [s.text for s in single] == [v.text for v in verified]
    assert sum(s.value == a + b for s, (a, b) in zip(single, pairs)) / len(pairs) >= 0.95
    passes_single = sum(s.passes for s in single) / len(pairs)
    passes_verified = sum(v.passes for v in verified) / len(pairs)
    assert passes_verified < 0.9 * passes_single, (passes_single, passes_verified)
    # Batched and one-at-a-time decoding agree (left padding does not leak into answers).
    for mode in ("single", "multi", "verified"):
        batched = decode(model, tok, pairs[:40], mode, batch_size=40)
        alone = [decode(model, tok, [p], mode)[0] for p in pairs[:40]]
        assert [x.text for x in batched] == [x.text for x in alone]


@pytest.mark.parametrize("draft_head", ["mlp", "block"])
def test_block_window_models_decode_alike_in_every_mode(tiny_run, draft_head, monkeypatch):
    """The window reads every cached token's block position and number and skips rejected drafts; answers hundreds
    of digits long take the gathered path. Every mode and batch size writes what full-pass greedy writes."""
    import hexadd.modeling.model as modeling
    trained, tok = load_model(str(tiny_run / "model"))
    torch.manual_seed(0)
    model = HexAddForCausalLM(HexAddConfig(**{**trained.config.to_dict(), "position_scheme": "block_relative",
                                              "window": 2, "n_predict": 3, "draft_head": draft_head})).eval()
    # The trained weights but its position table, so the answers have digits; two more heads, untrained, whose
    # drafts get rejected.
    model.load_state_dict({k: v for k, v in trained.state_dict().items() if "wpe" not in k}, strict=False)
    pairs = [(12, 34), (7, 5), (99, 99), (0, 0), (56, 7), (3, 81), (10 ** 150 + 12345, 987 * 10 ** 120)]

    def full_pass_greedy(a, b):
        row = tok.encode(format_prompt(a, b, 10))
        stop = {tok.convert_tokens_to_ids("+"), tok.pad_token_id, tok.unk_token_id}
        for _ in range(max(len(str(a)), len(str(b))) + 2):
            x = torch.tensor([row])
            with torch.no_grad():
                row.append(int(model(x, attention_mask=torch.ones_like(x), heads=1).logits[0, -1].argmax()))
            if row[-1] in stop:
                break
        return "".join(tok.convert_ids_to_tokens(row[len(tok.encode(format_prompt(a, b, 10))):]))

    # Random distance biases until the 151-digit problem's answer runs past the dense tile (the first or second
    # draw does, for either head).
    for seed in range(10):
        torch.manual_seed(seed)
        with torch.no_grad():
            for table in model.distance_biases():
                table.copy_(4 * torch.randn_like(table))
        if len(full_pass_greedy(*pairs[-1])) > 140:
            break
    expected = [full_pass_greedy(a, b) for a, b in pairs]
    assert len(set(expected)) == len(pairs) and len(expected[-1]) > 140, expected
    for dense_keys in (128, 0):
        monkeypatch.setattr(modeling, "DENSE_KEYS", dense_keys)
        for mode in ("single", "verified"):
            assert [a.text for a in decode(model, tok, pairs, mode, batch_size=4)] == expected, (mode, dense_keys)
            assert [decode(model, tok, [p], mode)[0].text for p in pairs] == expected, (mode, dense_keys)
    check_fits(model, 16 ** 40, 1)  # no position table to run out of
    with pytest.raises(ValueError, match="needs position"):
        check_fits(trained, 16 ** 40, 1)


def test_block_window_models_answer_any_length_in_hex_or_decimal(tiny_run, tmp_path):
    """A block-window model declares no operand range: inference answers long operands without
    --allow-out-of-range, in decimal, or in hexadecimal when both operands are written 0x..."""
    trained, tok = load_model(str(tiny_run / "model"))
    model = HexAddForCausalLM(HexAddConfig(**{**trained.config.to_dict(), "position_scheme": "block_relative",
                                              "window": 2})).eval()
    model.save_pretrained(tmp_path / "window")
    tok.save_pretrained(tmp_path / "window")
    big = "9" * 4933  # a 16,384-bit number has 4,933 decimal digits: past Python's default conversion limit
    proc = run_main("inference.py", "--model", str(tmp_path / "window"), f"{big}+1", "0xFF+0x1", "12+34", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # Untrained in its window, the model's answers are arbitrary digits (or none: `?`), written as the operands are.
    assert lines[0].startswith(big + "+1=") and lines[2].startswith("12+34=")
    assert re.fullmatch(r"0xFF\+0x1=(0x[0-9A-F]+|\?)", lines[1]) and re.fullmatch(r"12\+34=([0-9]+|\?)", lines[2])
    assert show(255 + 1, hexadecimal=True) == "0x100" and is_hex_problem("0xFF + 0x1") and not is_hex_problem("0xFF+1")
    assert "outside the trained operands" not in proc.stderr
    proc = run_main("inference.py", "--model", str(tiny_run / "model"), "0x1FF+0x1", cwd=tmp_path)
    assert_one_line_error(proc, "511+1: this model was trained on operands 0..99")
    proc = run_main("inference.py", "--model", str(tmp_path / "window"), "1" * 20_001 + "+1", cwd=tmp_path)
    assert_one_line_error(proc, "at most 20,000 digits")


def test_eval_reports_accuracy_lengths_and_passes(tiny_run, tmp_path):
    """What decoding the held-out file reports is what one teacher-forced pass says greedy decoding gets right,
    cell by cell; a right answer took one forward pass per token (its digits and the closing `+`)."""
    model, tok = load_model(str(tiny_run / "model"))
    test = dataset.load(tiny_run / "data")["test"]
    problems = [(x, y, c) for x, y, c in zip(test["a"], test["b"], test["sum"])]
    a, b = (torch.tensor([p[i] for p in problems]) for i in (0, 1))
    right = head1_correct(model, ProblemEncoder(tok, 10, True, 99)(a, b))
    wrong = decode(model, tok, [(x, y) for (x, y, _), ok in zip(problems, right.tolist()) if not ok], "single")
    passes = sum(len(str(c)) + 1 for (_, _, c), ok in zip(problems, right.tolist()) if ok) + sum(w.passes for w in wrong)
    proc = infer(tiny_run, "--eval", str(tiny_run / "data"), "--decode", "single", "--eval-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    n, correct = len(problems), int(right.sum())
    assert lines[0] == (f"exact match: {correct / n:.2%} ({correct}/{n}), decode=single, {passes / n:.2f} forward "
                        f"passes per answer, {sum(w.value is None for w in wrong)} malformed answers")
    digits_a, digits_b = 1 + (a >= 10).long(), 1 + (b >= 10).long()
    cell = {(la, lb): right[(digits_a == la) & (digits_b == lb)].float().mean().item() for la in (1, 2) for lb in (1, 2)}
    assert lines[3:5] == [f"{la:>6}" + "".join(f"{cell[la, lb]:>9.2%}" for lb in (1, 2)) for la in (1, 2)]


def test_malformed_answers_are_marked_not_raised(tiny_run):
    """An untrained model writes junk: the answer is `?` with a note, never a crash."""
    model, tok = load_model(str(tiny_run / "model"))
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.normal_(0, 1)
    answers = decode(model, tok, [(1, 2), (34, 56), (99, 0)], "verified")
    assert all((a.value is None) == (a.note is not None) for a in answers)
    assert any(a.value is None for a in answers)


def test_beyond_the_position_table_is_refused_even_out_of_range(tiny_run, tmp_path):
    long = "1" * 51
    proc = infer(tiny_run, "--allow-out-of-range", f"{long}+1")
    assert_one_line_error(proc, "needs position", "positions 0..15")
    proc = infer(tiny_run, "--allow-out-of-range", "100+1", "150+1")
    assert proc.returncode == 0, proc.stderr
    model, tok = load_model(str(tiny_run / "model"))
    answers = decode(model, tok, [(100, 1), (150, 1)], "verified")
    assert proc.stdout.splitlines() == [f"{a.a}+{a.b}={a.value if a.value is not None else '?'}" for a in answers]
    assert proc.stderr.splitlines() == [
        f"note: {a.a}+{a.b}: " + (a.note if a.value is None else "outside the trained operands 0..99; the answer is "
                                  + ("right" if a.value == a.a + a.b else "wrong")) for a in answers]
    # visualize_attention.py checks the range first, then the same position limit (check_fits) as above.
    proc = run_main("visualize_attention.py", "99999+1", "--model", str(tiny_run / "model"), cwd=tmp_path)
    assert_one_line_error(proc, "trained on operands 0..99", "--allow-out-of-range")
    assert not (tmp_path / "attention_visualizations").exists()


def test_eval_reads_decimal_lines_too(tiny_run, tmp_path):
    (tmp_path / "dec.txt").write_text("12+34\n\n7 + 5\n99+99\n")
    proc = infer(tiny_run, "--eval", str(tmp_path / "dec.txt"), "--eval-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out/eval_results.json").read_text())
    model, tok = load_model(str(tiny_run / "model"))
    right = sum(a.value == a.a + a.b for a in decode(model, tok, [(12, 34), (7, 5), (99, 99)], "verified"))
    assert result["total"] == 3 and result["correct"] == right
    assert sum(c["total"] for c in result["by_length"]) == 3
    assert (tmp_path / "out/accuracy_by_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "bad.txt").write_text("12+34\n\nabc+1\n")
    assert_one_line_error(infer(tiny_run, "--eval", str(tmp_path / "bad.txt"), "--eval-dir", str(tmp_path / "out")),
                          "bad.txt line 3")
