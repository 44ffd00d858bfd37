from collections import Counter

from conftest import ROOT, assert_one_line_error, run_script, sets
from hexadd.config.schema import DataConfig
from hexadd.config.files import load
from hexadd.data import dataset
from hexadd.data.generate import edge_cases, generate, overlap, unordered


def make(tmp_path, *overrides):
    cfg = load(DataConfig, ROOT / "data_config.yaml", [f"output.dir={tmp_path}", *overrides])
    return cfg, generate(cfg)


def problems(data_dir, split, check=None):
    """(a, b, a + b) of a split; the sum column and the `+A+B+C+` text (of `check` random rows, default all) agree."""
    import random
    from hexadd.data.numbers import parse_problem
    meta = dataset.load_meta(data_dir)
    ds = dataset.load(data_dir)[split]
    a, b, c, text = ds["a"][:], ds["b"][:], ds["sum"][:], ds["text"][:]
    rows = [(x, y, x + y) for x, y in zip(a, b)]
    assert rows == list(zip(a, b, c))
    for i in random.Random(0).sample(range(len(rows)), min(check or len(rows), len(rows))):
        assert parse_problem(text[i], meta.base, meta.reverse) == rows[i], (i, text[i])
    return rows


def test_default_scale_split(tmp_path):
    cfg, s = make(tmp_path)
    train, held = problems(tmp_path, "train", check=20_000), problems(tmp_path, "test")
    pairs_t = [(a, b) for a, b, _ in train]
    pairs_h = [(a, b) for a, b, _ in held]
    assert (s.train, s.held_out) == (len(train), len(held))
    assert len(train) + len(held) >= 300_000
    assert 4_900 < len(held) < 5_200  # 1.67%, plus the edge cases
    assert overlap(pairs_t, pairs_h) == 0 == s.overlap
    assert not {unordered(p) for p in pairs_t} & {unordered(p) for p in pairs_h}
    assert max(Counter(pairs_t).values()) == 1 and max(Counter(pairs_h).values()) == 1
    for a, b in edge_cases(0, 9999, 16):
        assert (a, b) in pairs_h and (b, a) in pairs_h
    assert {(0, 0), (9999, 9999), (4095, 1), (1, 4095)} <= set(pairs_h)
    assert all(0 <= a <= 9999 and 0 <= b <= 9999 for a, b in pairs_t)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    files = ("train.parquet", "test.parquet", "README.md")
    make(tmp_path, "problems.count=3000")
    first = [(tmp_path / f).read_bytes() for f in files]
    make(tmp_path, "problems.count=3000")
    assert [(tmp_path / f).read_bytes() for f in files] == first
    make(tmp_path, "problems.count=3000", "problems.seed=1")
    assert (tmp_path / "train.parquet").read_bytes() != first[0]


def test_exhaustive_covers_every_pair(tmp_path):
    make(tmp_path, "numbers.base=7", "numbers.max_operand=30", "problems.exhaustive=true")
    train, held = problems(tmp_path, "train"), problems(tmp_path, "test")
    assert sorted((a, b) for a, b, _ in train + held) == [(a, b) for a in range(31) for b in range(31)]


def test_cli_prints_sizes_and_zero_overlap(tmp_path):
    proc = run_script("data_generator.py", "--config", str(ROOT / "data_config.yaml"), *sets("problems.count=2000"), cwd=tmp_path,
                      fresh=True)  # this script's one launch in a new Python
    assert proc.returncode == 0, proc.stderr
    assert "overlap between splits (unordered pairs): 0" in proc.stdout
    assert (tmp_path / "data" / "train.parquet").is_file()


def test_more_problems_than_the_range_holds_is_an_error(tmp_path):
    proc = run_script("data_generator.py", "--config", str(ROOT / "data_config.yaml"),
                      *sets("numbers.max_operand=9", "problems.count=101"), cwd=tmp_path)
    assert_one_line_error(proc, "101 distinct problems", "only 100")


def test_rerun_failure_keeps_earlier_files(tmp_path):
    cfg = ["--config", str(ROOT / "data_config.yaml")]
    assert run_script("data_generator.py", *cfg, *sets("problems.count=500"), cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()}
    proc = run_script("data_generator.py", *cfg, *sets("numbers.max_operand=3", "problems.count=500"), cwd=tmp_path)
    assert proc.returncode == 2
    assert {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()} == before
