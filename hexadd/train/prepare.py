"""Everything a training run needs before its first step: the model built from the config and the
data, the optimizer and schedule, the device and the Accelerate process group."""
import math
import os
from dataclasses import dataclass

import torch
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from ..config.schema import TrainConfig
from ..data.dataset import DataMeta, load_meta, resolve
from ..common.devices import autocast, pick_device, resolve_precision
from ..data.encoding import INT64_MAX, ProblemEncoder
from ..common.errors import ConfigError, DataError
from ..modeling.model import HexAddConfig, HexAddForCausalLM
from ..modeling.schemes import SCHEMES
from ..data.numbers import num_digits
from ..modeling.positions import block_position_ids
from ..data.splits import Batches, Split, length_pair_weights, load_splits
from ..data.tokenizer import check_tokenizer, digit_token_ids, load_tokenizer


# ---------------------------------------------------------------- model construction

def build_model_config(cfg: TrainConfig, tok, meta: DataMeta, longest: dict) -> HexAddConfig:
    m = cfg.model
    pad = tok.pad_token_id
    config = HexAddConfig(
        vocab_size=len(tok), n_embd=m.n_embd, n_layer=m.n_layer, n_head=m.n_head, n_positions=m.n_positions,
        resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
        activation_function="gelu_pytorch_tanh",  # GPT-2's tanh GELU as one kernel instead of six ops
        bos_token_id=pad, eos_token_id=pad, pad_token_id=pad,
        n_predict=m.n_predict, draft_head=m.draft_head, position_scheme=m.positions, window=m.window,
        max_offset=m.max_offset, offset_per=m.offset_per,
        offset_scope=m.offset_scope, number_embedding=m.number_embedding,
        digit_token_ids=digit_token_ids(tok),
        base=meta.base, reverse=meta.reverse, min_operand=meta.min_operand, max_operand=meta.max_operand,
        dataset=meta.repo_id or cfg.data.repo_id,  # the Hub dataset it was trained on, for the model card
    )
    scheme = SCHEMES[m.positions]
    need = scheme.positions_needed(longest["digits"], longest["tokens"], m.max_offset)
    what = (f"the longest number ({longest['digits']} digit tokens) plus max_offset {m.max_offset}" if scheme.block
            else f"the longest sequence ({longest['tokens']} tokens)")
    if need is not None and m.n_positions < need:
        raise ConfigError(f"model.n_positions: {m.n_positions} cannot hold {what}; need at least {need}")
    return config


def longest(tok, splits: list[Split]) -> dict:
    """The longest number (in digit tokens) and the longest sequence, which n_positions must hold."""
    digit_ids = torch.tensor(digit_token_ids(tok))
    return {"digits": max(int(block_position_ids(s.input_ids, digit_ids, s.attention_mask).max()) for s in splits),
            "tokens": max(int(s.attention_mask.sum(1).max()) for s in splits)}


def param_groups(model, weight_decay: float):
    """nanoGPT's rule: decay matrices and embeddings, not biases or LayerNorm gains. The attention bias of
    block-window models is a bias too: decay would pull its gap between near and far keys towards 0."""
    seen, decay, no_decay = set(), [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # the tied embedding appears once
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 and not name.endswith("distance_bias") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------- setup

@dataclass
class Setup:
    """Everything a run needs before its first step."""
    model: HexAddForCausalLM          # the bare model (what is saved and evaluated)
    ddp_model: torch.nn.Module        # what the step runs: the model, or its DistributedDataParallel wrapper
    tok: object
    train_split: Split
    held_split: Split
    optimizer: torch.optim.Optimizer
    scheduler: object
    batches: Batches
    max_steps: int
    n_params: int
    accelerator: object
    precision: str
    encoder: ProblemEncoder | None    # None when the tokenizer merges digits: then strings are tokenized

    @property
    def device(self):
        return self.accelerator.device

    def autocast(self):
        return autocast(self.precision, self.device)


class OneProcess:
    """What the loop asks of an Accelerator, for a run started without a launcher: importing and building
    a real one costs about 3 s of start-up, and one process needs none of it."""
    num_processes, process_index, is_main_process = 1, 0, True

    def __init__(self, device):
        self.device = device

    def wait_for_everyone(self):
        pass


def make_accelerator(device_name: str):
    """An Accelerator on the asked device when launched with several processes (torchrun, accelerate
    launch); under torchrun on CPUs, `cpu=True` is what joins the process group."""
    device = pick_device(device_name)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
        return OneProcess(device)
    from accelerate import Accelerator
    return Accelerator(cpu=device.type == "cpu")


def prepare(cfg: TrainConfig, log=print, accelerator=None) -> Setup:
    """Seed, load data and tokenizer, check them against the config, and build model, optimizer and schedule."""
    t, runtime = cfg.training, cfg.runtime
    accelerator = accelerator or make_accelerator(runtime.device)
    device = accelerator.device
    precision = resolve_precision(runtime.precision, device)
    torch.set_num_threads(runtime.threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes))
    torch.manual_seed(t.seed)
    data_dir = resolve(cfg.data)
    meta = load_meta(data_dir)
    if 2 * meta.max_operand > INT64_MAX:  # training keeps operands as int64 tensors; evaluation takes any length
        raise DataError(f"{data_dir}: operands up to {num_digits(meta.max_operand, meta.base)} digits; training needs "
                        f"sums within 64-bit integers (base {meta.base}: at most {num_digits(INT64_MAX // 2 + 1, meta.base) - 1} "
                        "digits). Longer numbers are for evaluation: lengthgen.py, inference.py --allow-out-of-range")
    tok = load_tokenizer(cfg.tokenizer.dir)
    check_tokenizer(tok, meta.base)
    train_split, held_split = load_splits(tok, data_dir)
    encoder = None if ProblemEncoder.merges_digits(tok) else ProblemEncoder(tok, meta.base, meta.reverse, meta.max_operand)

    model = HexAddForCausalLM(build_model_config(cfg, tok, meta, longest(tok, [train_split, held_split])))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters ({n_params / 1e6:.2f}M), {cfg.model.n_layer} layers, {cfg.model.n_embd} wide, "
        f"{cfg.model.n_head} heads, {cfg.model.n_predict} prediction heads, {cfg.model.positions} positions")
    log(f"data: {len(train_split):,} training, {len(held_split):,} held-out problems (base {meta.base}); "
        f"{device}, {precision}, {accelerator.num_processes} process{'es' if accelerator.num_processes > 1 else ''}")

    weights = length_pair_weights(train_split.digits) if t.balance_lengths else None
    batches = Batches(len(train_split), t.batch_size, t.seed, weights)
    max_steps = t.max_steps if t.max_steps is not None else math.ceil(t.epochs * batches.per_epoch)
    # Eager attention: at these sizes (head dim 32, under 20 tokens) sdpa gains nothing on CPU
    # (bench/train_speed.py measures both); on a GPU sdpa's fused kernels win.
    model.set_attn_implementation("eager" if device.type == "cpu" else "sdpa")
    model.to(device)
    if device.type == "cuda":
        train_split, held_split = train_split.to(device), held_split.to(device)
    fused = device.type in ("cpu", "cuda")  # one kernel for all parameters
    optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=t.learning_rate, betas=(0.9, 0.99), fused=fused)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=min(t.warmup_steps, max_steps), num_training_steps=max_steps, min_lr_rate=t.min_lr_ratio)
    ddp_model = accelerator.prepare_model(model) if accelerator.num_processes > 1 else model
    return Setup(model, ddp_model, tok, train_split, held_split, optimizer, scheduler, batches, max_steps, n_params,
                 accelerator, precision, encoder)
