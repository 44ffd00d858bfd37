"""The two configs, data_config.yaml and train_config.yaml, as typed dataclasses: their sections, keys,
defaults and checks. Reading them from YAML with `--set` overrides is config_files.py.
"""
from dataclasses import dataclass, field

from ..common.errors import ConfigError

POSITION_SCHEMES = ("block", "learned", "sinusoidal", "block_sinusoidal", "block_relative")
BLOCK_SCHEMES = ("block", "block_sinusoidal", "block_relative")  # positions restart at every number
OFFSET_MODES = ("batch", "sample")
ACTIVATIONS = ("gelu_pytorch_tanh", "gelu", "relu")  # transformers names
OFFSET_SCOPES = ("digits", "answer", "row")
DRAFT_HEADS = ("mlp", "block")


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
    activation: str = "gelu_pytorch_tanh"  # the MLP's: GPT-2's tanh GELU, exact GELU, or ReLU (README)
    dropout: float = 0.0

    def validate(self, at):
        for key in ("n_embd", "n_layer", "n_head", "n_positions"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{at}.{key}: must be >= 1, got {getattr(self, key)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"{at}.n_embd: {self.n_embd} is not divisible by n_head {self.n_head}")
        if not 1 <= self.n_predict <= 4:
            raise ConfigError(f"{at}.n_predict: must be between 1 and 4, got {self.n_predict}")
        if self.positions not in POSITION_SCHEMES:
            raise ConfigError(f"{at}.positions: must be one of {', '.join(POSITION_SCHEMES)}, got {self.positions!r}")
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
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"{at}.activation: must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{at}.dropout: must be in [0, 1), got {self.dropout}")


@dataclass
class TrainingConfig:
    batch_size: int = 128
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.01
    warmup_steps: int = 100
    max_steps: int | None = 2200
    epochs: float | None = None
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    head_weight: float = 1.0
    balance_lengths: bool = True
    eval_interval: int = 100
    fresh_eval: int = 10_000
    carry_share: float = 0.5
    sum_share: float = 0.3
    margin: float = 0.0
    carry_rows: float = 0.0
    sum_rows: float = 0.0
    uniform_rows: float = 0.5
    replay: float = 0.1
    replay_until_right: bool = False
    ema: float = 0.995
    stop_clean_evals: int = 3
    stop_gate: int = 100_000
    stop_search: int = 0
    certify: int = 100_000
    certify_search: int = 10
    checkpoint_interval: int = 500
    early_stop: bool = True
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    precision: str = "auto"
    log_with: str = "none"

    def validate(self, at):
        for key in ("batch_size", "eval_interval", "checkpoint_interval"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{at}.{key}: must be >= 1, got {getattr(self, key)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"{at}.learning_rate: must be > 0, got {self.learning_rate}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"{at}.min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        if not 0 <= self.carry_share <= 1:
            raise ConfigError(f"{at}.carry_share: must be in [0, 1], got {self.carry_share}")
        if not 0 <= self.sum_share <= 1 - self.carry_share:
            raise ConfigError(f"{at}.sum_share: must be in [0, 1 - carry_share], got {self.sum_share}")
        if not 0 <= self.margin < float("inf"):
            raise ConfigError(f"{at}.margin: must be a finite number >= 0 (0: right is enough), got {self.margin}")
        if not 0 <= self.replay < 1:
            raise ConfigError(f"{at}.replay: must be in [0, 1), got {self.replay}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"{at}.ema: must be in [0, 1) (0: off), got {self.ema}")
        if not 0 <= self.carry_rows < 1 or self.replay + self.carry_rows >= 1:
            raise ConfigError(f"{at}.carry_rows: must be in [0, 1) and leave training rows beside replay "
                              f"(replay + carry_rows < 1), got {self.carry_rows}")
        if not 0 <= self.sum_rows < 1 or self.replay + self.carry_rows + self.sum_rows >= 1:
            raise ConfigError(f"{at}.sum_rows: must be in [0, 1) and leave training rows beside replay and carry_rows "
                              f"(replay + carry_rows + sum_rows < 1), got {self.sum_rows}")
        if not 0 <= self.uniform_rows < 1 or self.replay + self.carry_rows + self.sum_rows + self.uniform_rows >= 1:
            raise ConfigError(f"{at}.uniform_rows: must be in [0, 1) and leave training rows beside replay, carry_rows "
                              f"and sum_rows (their sum < 1), got {self.uniform_rows}")
        from ..train.devices import DEVICES, PRECISIONS
        if self.device.split(":", 1)[0] not in DEVICES:
            raise ConfigError(f"{at}.device: must be one of {', '.join(DEVICES)} (or cuda:N), got {self.device!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ConfigError(f"{at}.precision: must be auto or one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        from ..train.tracking import TRACKERS
        if self.log_with not in TRACKERS:
            raise ConfigError(f"{at}.log_with: must be one of {', '.join(TRACKERS)}, got {self.log_with!r}")
        for key in ("warmup_steps", "weight_decay", "grad_clip", "head_weight", "threads", "fresh_eval", "stop_clean_evals", "stop_gate", "stop_search", "certify", "certify_search"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{at}.{key}: must be >= 0, got {getattr(self, key)}")
        if (self.max_steps is None) == (self.epochs is None):
            raise ConfigError(f"{at}.max_steps: set exactly one of max_steps and epochs")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"{at}.max_steps: must be >= 1, got {self.max_steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"{at}.epochs: must be > 0, got {self.epochs}")


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
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: TrainOutputConfig = field(default_factory=TrainOutputConfig)
    hub: HubConfig = field(default_factory=HubConfig)
