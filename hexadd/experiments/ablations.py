"""Ablation rows: one small YAML file per row, holding overrides of the data and train configs.

    label: base 10 instead of 16
    claim: base 16 shortens sequences and helps
    data:
      numbers: {base: 10}
    train:
      model: {n_positions: 40}

The baseline row is the default config with no overrides. Every row is checked in full before any
training: unknown keys and wrong types through the config classes, keys the runner owns, the operand
range (the same for every row, so error rates compare) and whether model.n_positions holds the
row's longest problem. A bad row is a ConfigError naming its file.
"""
import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config.schema import DataConfig, TrainConfig
from ..modeling.schemes import SCHEMES
from ..config.files import apply_override, from_dict, read_yaml, to_dict
from ..common.errors import ConfigError
from ..data.numbers import num_digits

BASELINE = "baseline"
ROW_KEYS = ("label", "claim", "data", "train")
# Set by the runner for every run: folders, the seed, the certificate.
RUNNER_KEYS = ("data.output", "train.data", "train.tokenizer.dir", "train.output", "train.hub", "train.training.seed",
               "train.checks.certify")
# The same in every row, so that error rates compare: changed for all rows at once with --set.
SHARED_KEYS = ("data.numbers.min_operand", "data.numbers.max_operand")


@dataclass
class Row:
    name: str
    label: str
    claim: str = ""
    data: dict = field(default_factory=dict)   # overrides of the data config
    train: dict = field(default_factory=dict)  # overrides of the train config
    source: str = "the default config"


@dataclass
class Base:
    """The configs every row starts from, as raw dicts (the YAML files plus `--set` overrides)."""
    data: dict
    train: dict

    @classmethod
    def load(cls, data_path, train_path, overrides: list[str] = ()) -> "Base":
        base = cls(read_yaml(data_path), read_yaml(train_path))
        for o in overrides:
            section, _, rest = o.partition(".")
            if section not in ("data", "train") or not rest:
                raise ConfigError(f"--set {o!r}: expected data.SECTION.KEY=VALUE or train.SECTION.KEY=VALUE")
            if _among(o.partition("=")[0].strip(), RUNNER_KEYS):
                raise ConfigError(f"--set {o!r}: set by the ablation runner for every row")
            apply_override(getattr(base, section), rest)
        from_dict(DataConfig, base.data, "data")
        from_dict(TrainConfig, base.train, "train")
        return base

    def configs(self, row: Row) -> tuple[DataConfig, TrainConfig]:
        return (from_dict(DataConfig, merge(self.data, row.data), "data"),
                from_dict(TrainConfig, merge(self.train, row.train), "train"))


def merge(base: dict, over: dict) -> dict:
    """`base` with `over` laid on top, section by section."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _among(key: str, keys: tuple[str, ...]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in keys)


def _keys(d: dict, at: str = ""):
    for key, value in d.items():
        path = f"{at}.{key}" if at else str(key)
        yield path
        if isinstance(value, dict):
            yield from _keys(value, path)


def parse_row(path: Path, raw: dict, base: Base) -> Row:
    unknown = [k for k in raw if k not in ROW_KEYS]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key (known: {', '.join(ROW_KEYS)})")
    for key in ("label", "claim"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{key}: must be text, got {raw[key]!r}")
    for key in ("data", "train"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise ConfigError(f"{key}: must be a mapping of config sections, got {raw[key]!r}")
    row = Row(path.stem, raw.get("label", path.stem), raw.get("claim", ""), raw.get("data") or {},
              raw.get("train") or {}, str(path))
    keys = [k for section in ("data", "train") for k in _keys(getattr(row, section), section)]
    for k in keys:
        if _among(k, RUNNER_KEYS):
            raise ConfigError(f"{k}: set by the ablation runner for every row; a row may not change it")
        if _among(k, SHARED_KEYS):
            raise ConfigError(f"{k}: the same in every row, so that error rates compare; change it for all rows "
                              "with --set")
    check_positions(*base.configs(row))
    return row


def check_positions(data: DataConfig, train: TrainConfig) -> None:
    """model.n_positions must hold the longest problem (max+max is always held out). Exact for one token
    per digit; a tokenizer that merges digits is checked when its run starts."""
    if train.tokenizer.vocab_size is not None:
        return
    base, hi, m = data.numbers.base, data.numbers.max_operand, train.model
    longest, answer = num_digits(hi, base), num_digits(2 * hi, base)
    scheme = SCHEMES[m.positions]
    need = scheme.positions_needed(answer, 4 + 2 * longest + answer, m.max_offset)
    what = (f"a {answer}-digit number plus max_offset {m.max_offset}" if scheme.block
            else f"the longest problem ({4 + 2 * longest + answer} tokens)")
    if need is not None and m.n_positions < need:
        raise ConfigError(f"train.model.n_positions: {m.n_positions} cannot hold {what} in base {base}; "
                          f"need at least {need}")


def load_rows(folder: str | Path, base: Base, names: list[str] | None = None) -> list[Row]:
    """The baseline and every row file in `folder` (in file name order), checked; `names` picks some of them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder of row files")
    rows = [Row(BASELINE, "default config", "the reference the other rows change")]
    for path in sorted(folder.glob("*.yaml")):
        if path.stem == BASELINE:
            raise ConfigError(f"{path}: '{BASELINE}' is the default config's row; name the file otherwise")
        raw = read_yaml(path, "row file")  # its errors name the file already
        try:
            rows.append(parse_row(path, raw, base))
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    if names:
        known = {r.name for r in rows}
        missing = [n for n in names if n not in known]
        if missing:
            raise ConfigError(f"--rows: no row {missing[0]!r} (rows: {', '.join(r.name for r in rows)})")
        rows = [r for r in rows if r.name in names]
    return rows


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able parts: equal configs share data, tokenizers and results."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def without(cfg, *keys: str) -> dict:
    d = to_dict(cfg)
    for k in keys:
        d.pop(k, None)
    return d
