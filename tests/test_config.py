import pytest

from conftest import ROOT, assert_one_line_error, run_script, sets
from hexadd.config.schema import DataConfig, TrainConfig
from hexadd.config.files import load, to_dict
from hexadd.common.errors import ConfigError


def test_overrides_are_typed():
    cfg = load(TrainConfig, ROOT / "train_config.yaml",
               ["training.learning_rate=1e-3", "model.n_layer=3", "hub.repo_id=me/adder", "tokenizer.vocab_size=null"])
    assert cfg.training.learning_rate == 0.001 and cfg.model.n_layer == 3 and cfg.hub.repo_id == "me/adder"


@pytest.mark.parametrize("override,fragment", [
    ("numbers.bogus=1", "numbers.bogus: unknown key"),
    ("nonsense.key=1", "nonsense: unknown key"),
    ("numbers.base=ten", "numbers.base: must be int"),
    ("numbers.base=17", "numbers.base: must be between 2 and 16"),
    ("numbers.base=1", "numbers.base: must be between 2 and 16"),
    ("numbers.min_operand=50", "greater than max_operand"),
    ("numbers.min_operand=-1", "numbers.min_operand: must be >= 0"),
    ("problems.count=-5", "problems.count: must be >= 0"),
    ("problems.held_out_fraction=0", "held_out_fraction: must be strictly between 0 and 1"),
    ("problems.held_out_fraction=1.5", "held_out_fraction: must be strictly between 0 and 1"),
    ("problems.exhaustive=maybe", "problems.exhaustive: must be bool"),
    ("numbers.reverse", "expected SECTION.KEY=VALUE"),
])
def test_bad_data_config_stops_with_one_line(tmp_path, override, fragment):
    proc = run_script("data_generator.py", "--config", str(ROOT / "data_config.yaml"),
                      *sets("numbers.max_operand=20", override), cwd=tmp_path)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("override,fragment", [
    ("model.n_predict=5", "model.n_predict: must be between 1 and 4"),
    ("model.positions=rope", "model.positions: must be one of"),
    ("model.n_embd=30", "not divisible by n_head"),
    ("training.max_steps=null", "set exactly one of max_steps and epochs"),
    ("training.learning_rate=-1", "training.learning_rate: must be > 0"),
    ("training.head_weight=-0.5", "training.head_weight: must be >= 0"),
    ("model.offset_scope=plus", "model.offset_scope: must be digits, answer or row"),
    ("model.window=0", "model.window: must be >= 1"),
    ("model.draft_head=tree", "model.draft_head: must be mlp or block"),
    ("model.activation=swish", "model.activation: unknown key"),  # retired: docs/experiments.md
    ("training.ema=1", r"training.ema: must be in \[0, 1\) \(0: off\)"),
    ("training.mixture.uniform=0.9", r"training.mixture: the shares add up to 1; leave rows of the training file"),
    ("training.mixture.uniform=1.5", r"training.mixture.uniform: must be in \[0, 1\), got 1.5"),
    ("training.mixture.uniform=lots", "training.mixture.uniform: must be float, got 'lots'"),
    ("training.mixture=[0.5]", "training.mixture: must be a mapping of names to float"),
    ("checks.families.sums=0.6", r"checks.families: the shares add up to 1.1; at most 1"),
    ("checks.families.carry=-0.1", r"checks.families.carry: must be in \[0, 1\], got -0.1"),
    ("checks.eval_interval=0", "checks.eval_interval: must be >= 1"),
    ("checks.stop_gate=-1", "checks.stop_gate: must be >= 0"),
    ("runtime.device=tpu", "runtime.device: must be one of auto, cpu, cuda, mps"),
    ("runtime.log_with=mlflow", "runtime.log_with: must be one of none, tensorboard, wandb"),
    ("runtime.checkpoint_interval=0", "runtime.checkpoint_interval: must be >= 1"),
    ("hub.push=true", "hub.repo_id"),
])
def test_bad_train_config_raises(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load(TrainConfig, ROOT / "train_config.yaml", [override])


@pytest.mark.parametrize("section,name,fragment", [
    ("training.mixture", "carry_runs", "training.mixture.carry_runs: no such row kind (known: replay, uniform, carry, sums)"),
    ("checks.families", "uniform", "checks.families.uniform: no such family (known: carry, sums"),
])
def test_unknown_row_kinds_and_families_are_refused(section, name, fragment):
    """Kinds and families are records (train/mixture.py, data/samplers.py): a name none of them has is an error
    before training starts."""
    from hexadd.train.mixture import check

    cfg = load(TrainConfig, ROOT / "train_config.yaml", [f"{section}.{name}=0.1"])
    with pytest.raises(ConfigError) as e:
        check(cfg.training, cfg.checks)
    assert fragment in str(e.value)


def test_a_mapping_given_in_part_keeps_the_other_defaults():
    cfg = load(TrainConfig, ROOT / "train_config.yaml", ["training.mixture.uniform=0.25"])
    assert cfg.training.mixture == {"replay": 0.1, "uniform": 0.25}
    assert load(TrainConfig, None, ["checks.families.sums=0"]).checks.families == {"carry": 0.5, "sums": 0.0}


def test_training_has_few_knobs_and_resume_keys_come_from_the_fields():
    """The recipe's optimisation knobs stay few; what a resume must match is read from field metadata, with
    the runtime and the folders free to change."""
    import dataclasses

    from hexadd.config.schema import TrainingConfig, resume_keys

    assert len(dataclasses.fields(TrainingConfig)) <= 20
    keys = resume_keys()
    assert ("training", "mixture") in keys and ("checks", "families") in keys and ("model", "positions") in keys
    assert not any(section in ("runtime", "output", "data", "tokenizer", "hub") for section, _ in keys)
    assert ("training", "grad_clip") not in keys and ("checks", "certify") not in keys and ("model", "dropout") not in keys


def test_missing_and_malformed_config_files(tmp_path):
    proc = run_script("data_generator.py", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert_one_line_error(proc, "config file not found")
    (tmp_path / "bad.yaml").write_text("numbers: [1, 2\n")
    proc = run_script("data_generator.py", "--config", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert_one_line_error(proc, "not valid YAML")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    proc = run_script("data_generator.py", "--config", str(tmp_path / "list.yaml"), cwd=tmp_path)
    assert_one_line_error(proc, "must be a mapping")


def test_the_yaml_files_are_the_defaults():
    """The shipped files load, and a partial config gets the shipped recipe: the dataclass defaults equal them."""
    assert load(TrainConfig, None) == load(TrainConfig, ROOT / "train_config.yaml")
    assert load(DataConfig, None) == load(DataConfig, ROOT / "data_config.yaml")


def test_preset_holds_only_its_differences():
    """What the preset builds is checked in test_model.py; here, that it restates no default."""
    import yaml
    preset = yaml.safe_load((ROOT / "configs/reference-6.4M.yaml").read_text())
    defaults = to_dict(load(TrainConfig, None))
    for section, values in preset.items():
        for key, value in values.items():
            assert defaults[section][key] != value, f"{section}.{key} restates the default"
