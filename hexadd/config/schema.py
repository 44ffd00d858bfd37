"""The two configs, data_config.yaml and train_config.yaml, as typed dataclasses: their sections, keys,
defaults and checks. Reading them from YAML with `--set` overrides is files.py. Field metadata says what a resumed run must match (resume_keys).
"""
from dataclasses import dataclass, field, fields

from ..common.devices import DEVICES, PRECISIONS
from ..common.errors import ConfigError
from ..modeling.schemes import SCHEMES

OFFSET_MODES = ("batch", "sample")
OFFSET_SCOPES = ("digits", "answer", "row")
DRAFT_HEADS = ("mlp", "block")


# Resume: a key whose field carries FREE may differ between a run and the checkpoint it resumes from; every other
# key of a RESUMED section must match (the optimizer state and the data order would stop meaning what they meant).
FREE = {"resume": False}
RESUMED = {"resume": True}


def free(default, **kwargs):
    return field(default=default, metadata=FREE, **kwargs)


def shares(at: str, values: dict[str, float], total_below: float, what: str) -> None:
    for name, share in values.items():
        if not 0 <= share < 1:
            raise ConfigError(f"{at}.{name}: must be in [0, 1), got {share}")
    if sum(values.values()) >= total_below:
        raise ConfigError(f"{at}: the shares add up to {sum(values.values()):g}; {what}")


# ---------------------------------------------------------------- data_config.yaml

@dataclass
class NumbersConfig:
    base: int = 16
    reverse: bool = True
    min_operand: int = 0
    max_operand: int = 9999
    # Or the range by digit count (any length): operands of min_digits..max_digits digits.
    min_digits: int | None = None
    max_digits: int | None = None

    def validate(self, at):
        if not 2 <= self.base <= 16:
            raise ConfigError(f"{at}.base: must be between 2 and 16, got {self.base}")
        if (self.min_digits is None) != (self.max_digits is None):
            raise ConfigError(f"{at}.max_digits: set both min_digits and max_digits, or neither")
        if self.max_digits is not None:
            if not 1 <= self.min_digits <= self.max_digits:
                raise ConfigError(f"{at}.min_digits: need 1 <= min_digits <= max_digits, got {self.min_digits}..{self.max_digits}")
            lo = 0 if self.min_digits == 1 else self.base ** (self.min_digits - 1)
            hi = self.base ** self.max_digits - 1
            if (self.min_operand, self.max_operand) not in ((0, 9999), (lo, hi)):
                raise ConfigError(f"{at}.max_digits: give the operand range by digits or by min_operand/max_operand, not both")
            self.min_operand, self.max_operand = lo, hi
        if self.min_operand < 0:
            raise ConfigError(f"{at}.min_operand: must be >= 0, got {self.min_operand}")
        if self.min_operand > self.max_operand:
            raise ConfigError(f"{at}.min_operand: {self.min_operand} is greater than max_operand {self.max_operand}")


@dataclass
class ProblemsConfig:
    count: int = 300_000
    exhaustive: bool = False
    sampling: str = "length"
    held_out_fraction: float = 0.0167
    seed: int = 0

    def validate(self, at):
        if self.sampling not in ("length", "uniform"):
            raise ConfigError(f"{at}.sampling: must be length or uniform, got {self.sampling!r}")
        if self.count < 0:
            raise ConfigError(f"{at}.count: must be >= 0, got {self.count}")
        if not 0 < self.held_out_fraction < 1:
            raise ConfigError(f"{at}.held_out_fraction: must be strictly between 0 and 1, got {self.held_out_fraction}")


@dataclass
class DataOutputConfig:
    dir: str = "data"


@dataclass
class DataConfig:
    numbers: NumbersConfig = field(default_factory=NumbersConfig)
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    output: DataOutputConfig = field(default_factory=DataOutputConfig)


# ---------------------------------------------------------------- train_config.yaml

@dataclass
class TrainDataConfig:
    dir: str = "data"
    repo_id: str | None = None  # a Hub dataset (user/name) instead of dir: downloaded once, then read from the cache


@dataclass
class TokenizerConfig:
    # None: every character is its own token. An integer lets BPE merge digits up to that size.
    vocab_size: int | None = None
    dir: str = "tokenizer"  # written by tokenizer.py, read by trainer.py, copied into the model folder

    def validate(self, at):
        if self.vocab_size is not None and self.vocab_size < 1:
            raise ConfigError(f"{at}.vocab_size: must be a positive integer or null, got {self.vocab_size}")


@dataclass
class ModelConfig:
    n_embd: int = 128
    n_layer: int = 3
    n_head: int = 4
    n_positions: int = 32
    n_predict: int = 2
    draft_head: str = "mlp"  # heads 2..n: a residual MLP on the trunk's output, or a transformer block of their own
    positions: str = "block"
    window: int = 2  # block_relative: attention sees only keys within +-window block positions
    max_offset: int = 0
    offset_per: str = "batch"  # one random offset per batch (Abacus's code) or per sample (Position Coupling's)
    offset_scope: str = "digits"  # shift digits only, `+` at 0 (Abacus) or the whole row (Position Coupling)
    number_embedding: bool = True  # embed which number a token is in (first operand, second, answer)
    dropout: float = free(0.0)

    def validate(self, at):
        for key in ("n_embd", "n_layer", "n_head", "n_positions"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{at}.{key}: must be >= 1, got {getattr(self, key)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"{at}.n_embd: {self.n_embd} is not divisible by n_head {self.n_head}")
        if not 1 <= self.n_predict <= 4:
            raise ConfigError(f"{at}.n_predict: must be between 1 and 4, got {self.n_predict}")
        if self.positions not in SCHEMES:
            raise ConfigError(f"{at}.positions: must be one of {', '.join(SCHEMES)}, got {self.positions!r}")
        if self.draft_head not in DRAFT_HEADS:
            raise ConfigError(f"{at}.draft_head: must be mlp or block, got {self.draft_head!r}")
        if self.window < 1:
            raise ConfigError(f"{at}.window: must be >= 1, got {self.window}")
        if self.max_offset < 0:
            raise ConfigError(f"{at}.max_offset: must be >= 0, got {self.max_offset}")
        if self.offset_per not in OFFSET_MODES:
            raise ConfigError(f"{at}.offset_per: must be batch or sample, got {self.offset_per!r}")
        if self.offset_scope not in OFFSET_SCOPES:
            raise ConfigError(f"{at}.offset_scope: must be digits, answer or row, got {self.offset_scope!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{at}.dropout: must be in [0, 1), got {self.dropout}")


@dataclass
class TrainingConfig:
    """The optimisation: what is learnt, from which rows, in which order."""
    batch_size: int = 128
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.01
    warmup_steps: int = 100
    max_steps: int | None = 2200
    epochs: float | None = None
    weight_decay: float = 0.1
    grad_clip: float = free(1.0)
    head_weight: float = 1.0
    balance_lengths: bool = True
    # Rows of each batch by kind (train/mixture.py: replay, and data/samplers.py's families), as shares of the
    # batch; the rest come from the training file. Given keys replace the defaults' one by one.
    mixture: dict[str, float] = field(default_factory=lambda: {"replay": 0.1, "uniform": 0.5})
    ema: float = 0.995
    seed: int = 0

    def validate(self, at):
        if self.batch_size < 1:
            raise ConfigError(f"{at}.batch_size: must be >= 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ConfigError(f"{at}.learning_rate: must be > 0, got {self.learning_rate}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"{at}.min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"{at}.ema: must be in [0, 1) (0: off), got {self.ema}")
        shares(f"{at}.mixture", self.mixture, 1, "leave rows of the training file (a sum below 1)")
        for key in ("warmup_steps", "weight_decay", "grad_clip", "head_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{at}.{key}: must be >= 0, got {getattr(self, key)}")
        if (self.max_steps is None) == (self.epochs is None):
            raise ConfigError(f"{at}.max_steps: set exactly one of max_steps and epochs")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"{at}.max_steps: must be >= 1, got {self.max_steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"{at}.epochs: must be > 0, got {self.epochs}")


@dataclass
class ChecksConfig:
    """What a run measures as it goes, when it stops, and the certificate it ends with."""
    eval_interval: int = free(100)
    fresh_eval: int = 10_000
    # Problem families of each fresh check and gate sample (data/samplers.py), as shares; the rest uniform.
    families: dict[str, float] = field(default_factory=lambda: {"carry": 0.5, "sums": 0.3})
    early_stop: bool = free(True)
    stop_clean_evals: int = 3
    stop_gate: int = 100_000
    certify: int = free(100_000)
    certify_search: int = free(10)

    def validate(self, at):
        if self.eval_interval < 1:
            raise ConfigError(f"{at}.eval_interval: must be >= 1, got {self.eval_interval}")
        for key in ("fresh_eval", "stop_clean_evals", "stop_gate", "certify", "certify_search"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{at}.{key}: must be >= 0, got {getattr(self, key)}")
        for name, share in self.families.items():
            if not 0 <= share <= 1:
                raise ConfigError(f"{at}.families.{name}: must be in [0, 1], got {share}")
        if sum(self.families.values()) > 1:
            raise ConfigError(f"{at}.families: the shares add up to {sum(self.families.values()):g}; at most 1")


TRACKERS = ("none", "tensorboard", "wandb")


@dataclass
class RuntimeConfig:
    """Where and how a run executes; none of it changes what is learnt."""
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    checkpoint_interval: int = 500
    log_with: str = "none"

    def validate(self, at):
        if self.device.split(":", 1)[0] not in DEVICES:
            raise ConfigError(f"{at}.device: must be one of {', '.join(DEVICES)} (or cuda:N), got {self.device!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ConfigError(f"{at}.precision: must be auto or one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.log_with not in TRACKERS:
            raise ConfigError(f"{at}.log_with: must be one of {', '.join(TRACKERS)}, got {self.log_with!r}")
        if self.threads < 0:
            raise ConfigError(f"{at}.threads: must be >= 0, got {self.threads}")
        if self.checkpoint_interval < 1:
            raise ConfigError(f"{at}.checkpoint_interval: must be >= 1, got {self.checkpoint_interval}")


@dataclass
class TrainOutputConfig:
    model_dir: str = "model"
    run_dir: str = "runs/default"


@dataclass
class HubConfig:
    repo_id: str | None = None
    push: bool = False
    private: bool = False

    def validate(self, at):
        if self.push and not self.repo_id:
            raise ConfigError(f"{at}.repo_id: hub.push is true but no repo_id is set")


@dataclass
class TrainConfig:
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig, metadata=RESUMED)
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata=RESUMED)
    checks: ChecksConfig = field(default_factory=ChecksConfig, metadata=RESUMED)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output: TrainOutputConfig = field(default_factory=TrainOutputConfig)
    hub: HubConfig = field(default_factory=HubConfig)


def resume_keys(cls=TrainConfig) -> list[tuple[str, str]]:
    """(section, key) for every key a resumed run must share with its checkpoint, from the fields' metadata."""
    return [(section.name, f.name) for section in fields(cls) if section.metadata.get("resume")
            for f in fields(section.type) if f.metadata.get("resume", True)]
