"""The data folder as a Hugging Face dataset, on disk or on the Hub.

    data/
      train.parquet   training problems
      test.parquet    held-out problems (no unordered pair of them is in train)
      README.md       dataset card; its YAML header names the splits and holds the generating config

Columns: `a`, `b`, `sum` (int64; decimal strings when a sum could pass int64), `text` (the `+A+B+C+`
line), `digits_a`, `digits_b` (operand lengths in the base). `datasets.load_dataset("data")` loads it.
"""
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import DataError
from ..common.io import atomic_open, atomic_path
from .numbers import format_problem, num_digits
from ..hub.download import download

FORMAT = 2  # 1: train.txt, held_out.txt and meta.json
SPLITS = {"train": "train.parquet", "test": "test.parquet"}
CARD = "README.md"
INT64_MAX = 2**63 - 1


@dataclass
class DataMeta:
    base: int
    reverse: bool
    min_operand: int
    max_operand: int
    repo_id: str | None = None  # the Hub dataset it came from or was pushed to


def features(big: bool):
    from datasets import Features, Value
    number = Value("string" if big else "int64")
    return Features({"a": number, "b": number, "sum": number, "text": Value("string"),
                     "digits_a": Value("int32"), "digits_b": Value("int32")})


def _columns(pairs, base: int, reverse: bool, big: bool) -> dict:
    number = str if big else int
    return {"a": [number(a) for a, _ in pairs], "b": [number(b) for _, b in pairs],
            "sum": [number(a + b) for a, b in pairs],
            "text": [format_problem(a, b, base, reverse) for a, b in pairs],
            "digits_a": [num_digits(a, base) for a, _ in pairs], "digits_b": [num_digits(b, base) for _, b in pairs]}


def write(out_dir: Path, splits: dict[str, list], meta: dict) -> None:
    """Write each split's Parquet file and the card, each replaced atomically; byte-identical for equal input."""
    from datasets import Dataset, disable_progress_bars
    disable_progress_bars()
    base, reverse = meta["base"], meta["reverse"]
    big = 2 * meta["max_operand"] > INT64_MAX
    out_dir = Path(out_dir)
    for name, pairs in splits.items():
        ds = Dataset.from_dict(_columns(pairs, base, reverse, big), features=features(big))
        with atomic_path(out_dir / SPLITS[name]) as tmp:
            ds.to_parquet(str(tmp))
    with atomic_open(out_dir / CARD) as f:
        f.write(card_text({**meta, "format": FORMAT, "big_integers": big,
                           "splits": {name: len(pairs) for name, pairs in splits.items()}}))
    for old in ("train.txt", "held_out.txt", "meta.json"):  # an older layout would only mislead
        (out_dir / old).unlink(missing_ok=True)


def card_text(meta: dict) -> str:
    """The dataset card: YAML header (configs and splits for `load_dataset` and the Hub viewer,
    the generating config under `hexadd`) and a description with the measured split facts."""
    from huggingface_hub import DatasetCardData
    lo, hi, base = meta["min_operand"], meta["max_operand"], meta["base"]
    n = meta["splits"]
    data = DatasetCardData(
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f} for s, f in SPLITS.items()]}],
        task_categories=["text-generation"], tags=["hexadd", "arithmetic", "addition"],
        pretty_name=f"hexadd: addition of {lo}..{hi} in base {base}", hexadd=meta)
    order = "least significant digit first" if meta["reverse"] else "most significant digit first"
    example = format_problem(min(hi, 4095), 1, base, meta["reverse"])
    lines = [
        f"# Addition problems {lo}..{hi} + {lo}..{hi}, base {base}", "",
        f"Written by hexadd's `data_generator.py`. Each problem is a line `+A+B+C+` with C = A + B, every number "
        f"in base {base}, {order} (example: {min(hi, 4095)} + 1 is `{example}`).", "",
        "| split | problems |", "|---|---|",
        *(f"| {s} | {n[s]:,} |" for s in SPLITS),
        "", f"The test split holds problems out by unordered pair: if a+b is in it, b+a is too, and neither is in "
        f"train (overlap checked when written: {meta['overlap']}). It always holds the edge cases (extremes and the "
        f"longest carry chains in range): {len(meta['edge_cases'])} pairs.", "",
        "Columns: `a`, `b`, `sum` (" + ("decimal strings: the sums pass int64" if meta["big_integers"] else "int64")
        + "), `text` (the problem as the model reads it), `digits_a`, `digits_b` (operand lengths in the base).", "",
        "```python", "from datasets import load_dataset",
        f'ds = load_dataset("{meta.get("repo_id") or "data"}")', "```", "",
        "The generating config (also in this card's YAML header, under `hexadd.config.schema`):", "",
        "```yaml", _yaml(meta["config"]).rstrip(), "```",
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"


def _yaml(obj) -> str:
    import yaml
    return yaml.safe_dump(obj, sort_keys=False)


# ---------------------------------------------------------------- reading

def read_card(data_dir: str | Path) -> dict:
    """The `hexadd` block of the card's YAML header; a folder in the older text layout is told to regenerate."""
    from huggingface_hub import metadata_load
    data_dir = Path(data_dir)
    path = data_dir / CARD
    if not path.is_file():
        if (data_dir / "train.txt").is_file() or (data_dir / "meta.json").is_file():
            raise DataError(f"{data_dir} holds data in an older layout (text files): run data_generator.py again")
        raise DataError(f"{path} not found: run data_generator.py first")
    try:
        meta = (metadata_load(path) or {}).get("hexadd")
    except Exception:  # yaml errors of every kind
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path} is not a hexadd dataset card of this version: run data_generator.py again")
    return meta


def load_meta(data_dir: str | Path) -> DataMeta:
    raw = read_card(data_dir)
    try:
        return DataMeta(int(raw["base"]), bool(raw["reverse"]), int(raw["min_operand"]), int(raw["max_operand"]),
                        raw.get("repo_id"))
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{Path(data_dir) / CARD} is malformed: run data_generator.py again") from None


def load(data_dir: str | Path):
    """The DatasetDict (Arrow, memory-mapped from the datasets cache), checked against the card."""
    import datasets
    from datasets import load_dataset
    data_dir = Path(data_dir)
    meta = read_card(data_dir)
    files = {}
    for split, name in SPLITS.items():
        if not (data_dir / name).is_file():
            raise DataError(f"{data_dir / name} not found: run data_generator.py again")
        files[split] = str(data_dir / name)
    datasets.disable_progress_bars()
    # The library logs a damaged file before raising; the one line below says it for the user.
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        dd = load_dataset("parquet", data_files=files, features=features(meta["big_integers"]))
    except Exception as e:  # pyarrow and datasets raise many types for a damaged file
        raise DataError(f"{data_dir}: a Parquet file could not be read ({type(e).__name__}); "
                        "run data_generator.py again") from None
    for split, count in meta["splits"].items():
        if dd[split].num_rows != count:
            raise DataError(f"{data_dir / SPLITS[split]} holds {dd[split].num_rows:,} problems, its card says "
                            f"{count:,}: run data_generator.py again")
    return dd


def resolve(data_cfg) -> Path:
    """The local folder of the data: `data.dir`, or the snapshot of the Hub dataset `data.repo_id` (cached)."""
    if not getattr(data_cfg, "repo_id", None):
        return Path(data_cfg.dir)
    return download(data_cfg.repo_id, repo_type="dataset")
