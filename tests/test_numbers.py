import random
import re

import pytest

from hexadd.data.numbers import (decode_number, encode_number, format_problem, format_prompt, from_base,
                            parse_decimal_problem, parse_problem, to_base)


def test_examples_from_the_format():
    assert format_problem(1342, 879, 10) == "+2431+978+1222+"
    assert format_problem(4095, 1, 16) == "+FFF+1+0001+"
    assert format_prompt(4095, 1, 16) == "+FFF+1+"
    assert format_problem(5, 3, 2, reverse=False) == "+101+11+1000+"
    assert to_base(0, 7) == "0"


def test_round_trip_random_numbers_and_bases():
    rng = random.Random(0)
    for _ in range(3000):
        base = rng.randint(2, 16)
        n = rng.randint(0, 10 ** rng.randint(1, 30))
        reverse = rng.random() < 0.5
        assert from_base(to_base(n, base), base) == n
        assert int(to_base(n, base), base) == n
        assert decode_number(encode_number(n, base, reverse), base, reverse) == n
        a, b = rng.randint(0, n), rng.randint(0, 10**6)
        assert parse_problem(format_problem(a, b, base, reverse), base, reverse) == (a, b, a + b)


@pytest.mark.parametrize("line", ["+12+3+", "12+3+15+", "+1+2+3+4+", "+1G+2+3+", "+12+3+16+", "++3+3+"])
def test_parse_problem_rejects(line):
    with pytest.raises(ValueError):
        parse_problem(line, 16 if "G" in line else 10, reverse=False)


def test_parse_decimal_problem_accepts_spaces():
    assert parse_decimal_problem("1234+5678") == (1234, 5678)
    assert parse_decimal_problem(" 1234 + 5678 ") == (1234, 5678)


@pytest.mark.parametrize("text,fragment", [
    ("", "empty"), ("12+", "missing operand"), ("+5", "missing operand"), ("abc+1", "not a non-negative"),
    ("-3+4", "negative"), ("3+-4", "negative"), ("1.5+2", "decimals"), ("1+2+3", "two operands"),
    ("12", "expected a+b"), ("١٢+3", "not a non-negative"),
])
def test_parse_decimal_problem_rejects(text, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_decimal_problem(text)
