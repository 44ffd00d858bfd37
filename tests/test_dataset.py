"""The data folder as a Hugging Face dataset: layout, card, types, damage, and the tokenization cache."""
import os
from pathlib import Path

import pytest

from conftest import ROOT
from hexadd.data import dataset
from hexadd.config.schema import DataConfig
from hexadd.config.files import load
from hexadd.data.generate import generate
from hexadd.common.errors import DataError


def make(out, *overrides):
    return generate(load(DataConfig, ROOT / "data_config.yaml", [f"output.dir={out}", *overrides]))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    make(out, "problems.count=3000")
    return out


def test_load_dataset_reads_the_folder_with_its_card(small):
    from datasets import load_dataset
    dd = load_dataset(str(small))  # what a user types: the card's configs name the splits
    assert set(dd) == {"train", "test"}
    assert 3000 <= dd["train"].num_rows + dd["test"].num_rows <= 3000 + 26  # edge cases not drawn are added
    assert {n: str(f.dtype) for n, f in dd["train"].features.items()} == {
        "a": "int64", "b": "int64", "sum": "int64", "text": "string", "digits_a": "int32", "digits_b": "int32"}
    row = dd["test"].filter(lambda r: r["a"] == 4095 and r["b"] == 1)[0]  # an edge case, always held out
    assert row == {"a": 4095, "b": 1, "sum": 4096, "text": "+FFF+1+0001+", "digits_a": 3, "digits_b": 1}
    meta = dataset.read_card(small)
    assert meta["splits"] == {"train": dd["train"].num_rows, "test": dd["test"].num_rows}
    assert meta["overlap"] == 0 and meta["config"]["problems"]["count"] == 3000
    card = (small / "README.md").read_text()
    assert "least significant digit first" in card and f"| test | {dd['test'].num_rows:,} |" in card


def test_operands_beyond_int64_are_stored_exactly(tmp_path):
    hi = 16**20 - 1  # sums pass 2^63
    make(tmp_path, f"numbers.max_operand={hi}", "numbers.min_operand=0", "problems.count=200")
    ds = dataset.load(tmp_path)["train"]
    assert str(ds.features["a"].dtype) == "string"
    assert all(int(a) + int(b) == int(c) for a, b, c in zip(ds["a"], ds["b"], ds["sum"]))
    assert max(int(a) for a in ds["a"]) > 2**63
    assert dataset.load_meta(tmp_path).max_operand == hi


def test_damaged_or_old_folders_get_one_line_errors(small, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(small, bad)
    (bad / "train.parquet").write_bytes((small / "train.parquet").read_bytes()[:1000])
    with pytest.raises(DataError, match="a Parquet file could not be read"):
        dataset.load(bad)
    (bad / "train.parquet").unlink()
    with pytest.raises(DataError, match="train.parquet not found"):
        dataset.load(bad)
    old = tmp_path / "old"
    old.mkdir()
    (old / "train.txt").write_text("+1+1+2+\n")
    with pytest.raises(DataError, match="older layout .* run data_generator.py again"):
        dataset.load_meta(old)
    (old / "README.md").write_text("---\nlicense: mit\n---\n# some other dataset\n")
    with pytest.raises(DataError, match="not a hexadd dataset card"):
        dataset.load(old)


def test_tokenization_is_cached_per_tokenizer(small):
    from hexadd.data.splits import load_splits
    from hexadd.data.tokenizer import train_tokenizer

    lines = dataset.load(small)["train"]["text"][:]
    cache = Path(os.environ["HF_DATASETS_CACHE"])

    def arrow_files():
        return {p for p in cache.rglob("*.arrow")}

    plain = train_tokenizer(lines)
    load_splits(plain, small)
    before = arrow_files()
    train, held = load_splits(plain, small)  # same data, same tokenizer: read from the cache
    assert arrow_files() == before
    assert train.input_ids.shape[1] == max(len(t) for t in lines)  # one token per character
    bpe = train_tokenizer(lines, vocab_size=60)
    train_bpe, _ = load_splits(bpe, small)
    assert len(arrow_files() - before) == 2  # train and test encoded anew
    assert train_bpe.input_ids.shape[1] < train.input_ids.shape[1]  # merged digits: shorter rows
    assert bpe.batch_decode(train_bpe.input_ids[:5], skip_special_tokens=True) == lines[:5]
