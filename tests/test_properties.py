"""Property tests: the number format round-trips, and the parsers never fail with anything but the
project's own one-line errors, whatever text they are given."""
import dataclasses
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hexadd.config.schema import DataConfig, TrainConfig
from hexadd.config.files import from_dict, load, to_dict
from hexadd.data.generate import read_problems
from hexadd.common.errors import ConfigError, DataError
from hexadd.data.numbers import (decode_number, encode_number, format_problem, num_digits, parse_decimal_problem,
                            parse_problem)

bases = st.integers(min_value=2, max_value=16)
big = st.integers(min_value=0, max_value=10**80)  # far beyond int64


@given(n=big, base=bases, reverse=st.booleans())
def test_numbers_round_trip_in_every_base(n, base, reverse):
    text = encode_number(n, base, reverse)
    assert decode_number(text, base, reverse) == n
    assert len(text) == num_digits(n, base)
    most_significant_first = text[::-1] if reverse else text
    assert int(most_significant_first, base) == n


@given(a=big, b=big, base=bases, reverse=st.booleans())
def test_problems_round_trip(a, b, base, reverse):
    line = format_problem(a, b, base, reverse)
    assert parse_problem(line, base, reverse) == (a, b, a + b)


@given(st.text(max_size=60))
def test_decimal_problems_parse_or_say_why(text):
    try:
        a, b = parse_decimal_problem(text)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
    else:
        left, right = (part.strip() for part in text.strip().split("+"))
        assert left.isascii() and right.isascii() and (a, b) == (int(left), int(right))


@given(a=big, b=big, spaces=st.sampled_from(["", " ", "  "]))
def test_decimal_problems_accept_what_they_should(a, b, spaces):
    assert parse_decimal_problem(f"{spaces}{a}{spaces}+{spaces}{b}{spaces}") == (a, b)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
section_names = st.sampled_from(["data", "tokenizer", "model", "training", "output", "hub", "numbers", "problems"])
key_names = st.sampled_from(["dir", "vocab_size", "n_embd", "n_layer", "batch_size", "max_steps", "epochs", "base",
                             "count", "seed", "device", "precision", "replay", "bogus", "max_operand"])
configs = st.dictionaries(section_names, st.dictionaries(key_names, yaml_values, max_size=4) | yaml_values, max_size=4)


def unknown_key(cls, data) -> bool:
    """Whether `data` names a section or key that `cls` does not have, or is not a mapping of sections."""
    if not isinstance(data, dict):
        return True
    sections = {f.name: f.type for f in dataclasses.fields(cls)}
    return any(name not in sections or not isinstance(value, dict)
               or any(key not in {f.name for f in dataclasses.fields(sections[name])} for key in value)
               for name, value in data.items())


def accepted(cls, cfg, data) -> None:
    """What the loader accepted names only known keys, and is a config it accepts again unchanged."""
    assert not unknown_key(cls, data), f"accepted {data!r}"
    assert from_dict(cls, to_dict(cfg)) == cfg


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=configs | yaml_values, cls=st.sampled_from([TrainConfig, DataConfig]))
def test_config_loader_raises_only_config_errors(tmp_path, data, cls):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        cfg = load(cls, path)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
    else:
        accepted(cls, cfg, data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=string.printable + "é€\x00", max_size=200))
def test_config_loader_on_arbitrary_text(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        cfg = load(TrainConfig, path)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
    else:
        accepted(TrainConfig, cfg, yaml.safe_load(text))


@settings(max_examples=200)
@given(override=st.text(max_size=40) | st.builds("{}.{}={}".format, section_names, key_names, st.text(max_size=6)))
def test_overrides_raise_only_config_errors(override):
    try:
        cfg = load(TrainConfig, None, [override])
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
    else:
        path, sep, _ = override.partition("=")
        *sections, key = path.strip().split(".")
        assert sep and sections, f"accepted {override!r}"
        accepted(TrainConfig, cfg, {sections[0]: {key: None}} if len(sections) == 1 else {})


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=st.lists(st.tuples(st.integers(0, 999), st.integers(0, 999)), min_size=1, max_size=20),
       bad=st.text(alphabet="+0123456789ABCDEFG x-", min_size=1, max_size=20), where=st.integers(0, 20))
def test_data_reader_names_the_malformed_line(tmp_path, good, bad, where):
    lines = [format_problem(a, b, 10) for a, b in good]
    try:
        parse_problem(bad.strip(), 10)
        return  # the random text happens to be a valid problem
    except ValueError:
        pass
    if not bad.strip():
        return  # blank lines are skipped, not errors
    where = min(where, len(lines))
    lines.insert(where, bad)
    path = tmp_path / "p.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"line {where + 1}:"):
        read_problems(path, 10, True)
