"""The training loop: answer-only loss for every head, exact-match evaluation, best model, resumable checkpoints."""
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from .config import TrainConfig, to_dict
from .data import HELD_OUT_FILE, TRAIN_FILE, DataMeta, load_meta, read_problems
from .errors import ConfigError, DataError
from .io import atomic_open, write_json
from .model import BLOCK_SCHEMES, HexAddConfig, HexAddForCausalLM
from .numbers import num_digits
from .positions import block_position_ids
from .tokenization import check_tokenizer, digit_token_ids, load_tokenizer, separator_id

METRICS_FILE = "metrics.jsonl"


# ---------------------------------------------------------------- data as tensors

@dataclass
class Split:
    input_ids: torch.Tensor      # (N, T) right-padded
    attention_mask: torch.Tensor # (N, T)
    labels: torch.Tensor         # (N, T) the answer tokens `C+`, -100 elsewhere
    operands: torch.Tensor       # (N, 2) decimal a, b

    def __len__(self):
        return len(self.input_ids)


def encode_split(tok, lines: list[str], problems, path) -> Split:
    enc = tok(lines, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if tok.unk_token_id is not None and (ids == tok.unk_token_id).any():
        row = int((ids == tok.unk_token_id).any(1).nonzero()[0])
        raise DataError(f"{path} line {row + 1}: the tokenizer does not know a character of {lines[row]!r}; run tokenizer.py again")
    sep = (ids == separator_id(tok)).long()
    answer = ((sep.cumsum(1) - sep) >= 3) & mask.bool()  # every token after the third `+`
    labels = torch.where(answer, ids, torch.full_like(ids, -100))
    operands = torch.tensor([(a, b) for a, b, _ in problems], dtype=torch.long)
    return Split(ids, mask, labels, operands)


def load_split(tok, path: Path, meta: DataMeta) -> Split:
    lines, problems = read_problems(path, meta.base, meta.reverse)
    return encode_split(tok, lines, problems, path)


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model, split: Split, batch_size: int = 2048) -> dict:
    """Teacher-forced pass over a split. Head-1 argmax matching every answer token is exactly what
    greedy decoding would return, so `accuracy` is exact-match accuracy of plain greedy decoding."""
    was_training = model.training
    model.eval()
    n = model.config.n_predict
    correct = torch.zeros(len(split), n, dtype=torch.bool)
    loss_sum, tokens = torch.zeros(n), 0
    for i in range(0, len(split), batch_size):
        ids, mask, labels = (t[i:i + batch_size] for t in (split.input_ids, split.attention_mask, split.labels))
        out = model(ids, attention_mask=mask, labels=labels)
        w = int((labels[:, 1:] != -100).sum())
        loss_sum += out.head_losses.float() * w
        tokens += w
        for j, lg in enumerate(out.head_logits, 1):
            target = labels[:, j:]                                   # (B, T-j)
            hit = (lg[:, :-j].argmax(-1) == target) | (target == -100)
            correct[i:i + batch_size, j - 1] = hit.all(dim=1)
    model.train(was_training)
    head1 = correct[:, 0]
    return {
        "accuracy": head1.float().mean().item(),
        "errors": int((~head1).sum()),
        "loss": (loss_sum.sum() / (tokens * n)).item(),
        "head_losses": (loss_sum / tokens).tolist(),
        "head_exact": correct.float().mean(0).tolist(),  # head j teacher-forced, every answer token right
    }


# ---------------------------------------------------------------- model construction

def build_model_config(cfg: TrainConfig, tok, meta: DataMeta, longest: dict) -> HexAddConfig:
    m = cfg.model
    pad = tok.pad_token_id
    config = HexAddConfig(
        vocab_size=len(tok), n_embd=m.n_embd, n_layer=m.n_layer, n_head=m.n_head, n_positions=m.n_positions,
        resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
        activation_function="gelu_pytorch_tanh",  # GPT-2's tanh GELU (gelu_new) as one kernel instead of six ops
        bos_token_id=pad, eos_token_id=pad, pad_token_id=pad,
        n_predict=m.n_predict, position_scheme=m.positions, max_offset=m.max_offset,
        digit_token_ids=digit_token_ids(tok),
        base=meta.base, reverse=meta.reverse, min_operand=meta.min_operand, max_operand=meta.max_operand,
    )
    if m.positions in BLOCK_SCHEMES:
        need = longest["digits"] + m.max_offset + 1
        what = f"the longest number ({longest['digits']} digit tokens) plus max_offset {m.max_offset}"
    else:
        need, what = longest["tokens"], f"the longest sequence ({longest['tokens']} tokens)"
    if m.n_positions < need:
        raise ConfigError(f"model.n_positions: {m.n_positions} cannot hold {what}; need at least {need}")
    return config


def longest(tok, splits: list[Split]) -> dict:
    """The longest number (in digit tokens) and the longest sequence, which n_positions must hold."""
    digit_ids = torch.tensor(digit_token_ids(tok))
    return {"digits": max(int(block_position_ids(s.input_ids, digit_ids, s.attention_mask).max()) for s in splits),
            "tokens": max(int(s.attention_mask.sum(1).max()) for s in splits)}


def param_groups(model, weight_decay: float):
    """nanoGPT's rule: decay matrices and embeddings, not biases or LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    seen, decay, no_decay = set(), [], []
    for p in params:
        if id(p) in seen:  # the tied embedding appears once
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------- checkpoints (safetensors + JSON, no pickle)

def save_checkpoint(run_dir: Path, step: int, model, optimizer, scheduler, best: dict, train_time_s: float) -> None:
    """Write checkpoint-{step}/ completely, then point `latest.json` at it; a kill leaves the previous one usable."""
    ckpt = run_dir / f"checkpoint-{step}"
    shutil.rmtree(ckpt, ignore_errors=True)
    model.save_pretrained(ckpt)
    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous() for i, s in opt["state"].items() for k, v in s.items()}
    tensors["torch_rng_state"] = torch.get_rng_state()
    save_file(tensors, ckpt / "optimizer.safetensors")
    write_json(ckpt / "trainer_state.json", {
        "step": step, "train_time_s": train_time_s, "param_groups": opt["param_groups"],
        "scheduler": scheduler.state_dict(), "best": best})
    previous = _latest(run_dir)
    write_json(run_dir / "latest.json", {"checkpoint": ckpt.name})
    if previous is not None and previous != ckpt:
        shutil.rmtree(previous, ignore_errors=True)


def _latest(run_dir: Path) -> Path | None:
    try:
        return run_dir / json.loads((run_dir / "latest.json").read_text())["checkpoint"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None


def load_checkpoint(run_dir: Path, model, optimizer, scheduler) -> tuple[int, dict, float]:
    ckpt = _latest(run_dir)
    if ckpt is None or not (ckpt / "trainer_state.json").is_file():
        raise DataError(f"--resume: no checkpoint in {run_dir}")
    model.load_state_dict(load_file(ckpt / "model.safetensors"), strict=False)
    model.tie_weights()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    tensors = load_file(ckpt / "optimizer.safetensors")
    torch.set_rng_state(tensors.pop("torch_rng_state"))
    opt_state = {}
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        opt_state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    return state["step"], state["best"], state["train_time_s"]


def save_model(model, tok, model_dir: Path, extra_files: dict[str, Path] | None = None) -> None:
    """Save weights, config and tokenizer into a scratch folder, then move each file into place atomically."""
    tmp = model_dir.parent / f".{model_dir.name}.saving"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    for name, src in (extra_files or {}).items():
        if src.is_file():
            shutil.copyfile(src, tmp / name)
    model_dir.mkdir(parents=True, exist_ok=True)
    for f in tmp.iterdir():
        os.replace(f, model_dir / f.name)
    tmp.rmdir()


# ---------------------------------------------------------------- the loop

class Batches:
    """Seeded, stateless order: batch `step` depends only on (seed, step), so a resumed run sees the same data.

    Without weights, each epoch is a permutation of the rows. With `weights`, an epoch's rows are drawn
    with replacement in proportion to them (same count per epoch).
    """

    def __init__(self, n: int, batch_size: int, seed: int, weights: torch.Tensor | None = None):
        self.n, self.batch_size, self.seed, self.weights = n, min(batch_size, n), seed, weights
        self.per_epoch = n // self.batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm = (torch.randperm(self.n, generator=g) if self.weights is None else
                          torch.multinomial(self.weights, self.per_epoch * self.batch_size, replacement=True, generator=g))
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


def length_pair_weights(operands: torch.Tensor, base: int) -> torch.Tensor:
    """(N,) row weights that make every (digits of a, digits of b) pair equally likely in a batch.

    The data generator draws digit counts uniformly, but a pair of short lengths has few distinct
    problems (256 one-digit + one-digit pairs in base 16), so such pairs are rare in train.txt
    and were where held-out answers went wrong; weighting by length pair repeats them instead.
    """
    longest = num_digits(int(operands.max()), base)
    digits = 1 + sum(((operands >= base**k).long() for k in range(1, longest)), torch.zeros_like(operands))  # (N, 2)
    _, pair, count = torch.unique(digits, dim=0, return_inverse=True, return_counts=True)
    return 1.0 / count[pair].double()


def train_step(model, optimizer, scheduler, split: Split, idx: torch.Tensor, grad_clip: float):
    """One optimizer step on the rows `idx` of `split`."""
    out = model(split.input_ids[idx], attention_mask=split.attention_mask[idx], labels=split.labels[idx])
    out.loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return out


@dataclass
class Setup:
    """Everything a run needs before its first step."""
    model: HexAddForCausalLM
    tok: object
    train_split: Split
    held_split: Split
    optimizer: torch.optim.Optimizer
    scheduler: object
    batches: Batches
    max_steps: int
    n_params: int


def prepare(cfg: TrainConfig, log=print) -> Setup:
    """Seed, load data and tokenizer, check them against the config, and build model, optimizer and schedule."""
    t = cfg.training
    torch.set_num_threads(t.threads or os.cpu_count())
    torch.manual_seed(t.seed)
    data_dir, model_dir = Path(cfg.data.dir), Path(cfg.output.model_dir)
    meta = load_meta(data_dir)
    tok = load_tokenizer(model_dir)
    check_tokenizer(tok, meta.base)
    train_split = load_split(tok, data_dir / TRAIN_FILE, meta)
    held_split = load_split(tok, data_dir / HELD_OUT_FILE, meta)

    model = HexAddForCausalLM(build_model_config(cfg, tok, meta, longest(tok, [train_split, held_split])))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters ({n_params / 1e6:.2f}M), {cfg.model.n_layer} layers, {cfg.model.n_embd} wide, "
        f"{cfg.model.n_head} heads, {cfg.model.n_predict} prediction heads, {cfg.model.positions} positions")
    log(f"data: {len(train_split):,} training, {len(held_split):,} held-out problems (base {meta.base})")

    weights = length_pair_weights(train_split.operands, meta.base) if t.balance_lengths else None
    batches = Batches(len(train_split), t.batch_size, t.seed, weights)
    max_steps = t.max_steps if t.max_steps is not None else math.ceil(t.epochs * batches.per_epoch)
    # Eager attention: at these sizes (head dim 32, under 20 tokens) sdpa gains nothing on CPU
    # (bench/train_speed.py measures both); fused AdamW is one kernel for all parameters.
    model.set_attn_implementation("eager")
    optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=t.learning_rate, betas=(0.9, 0.99), fused=True)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=min(t.warmup_steps, max_steps), num_training_steps=max_steps, min_lr_rate=t.min_lr_ratio)
    return Setup(model, tok, train_split, held_split, optimizer, scheduler, batches, max_steps, n_params)


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, log=print) -> dict:
    """Train per `cfg`; `stop_after` ends the run early at that step, with a checkpoint to resume from."""
    t = cfg.training
    data_dir, model_dir, run_dir = Path(cfg.data.dir), Path(cfg.output.model_dir), Path(cfg.output.run_dir)
    run = prepare(cfg, log)
    model, tok, optimizer, scheduler, batches, max_steps = (run.model, run.tok, run.optimizer, run.scheduler,
                                                            run.batches, run.max_steps)
    train_split, held_split, n_params = run.train_split, run.held_split, run.n_params

    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / METRICS_FILE
    step, best, elapsed = 0, {"accuracy": -1.0, "loss": math.inf, "step": 0}, 0.0
    if resume:
        step, best, elapsed = load_checkpoint(run_dir, model, optimizer, scheduler)
        _truncate_metrics(metrics_path, step)
        log(f"resumed from step {step}")
    else:
        metrics_path.unlink(missing_ok=True)
    with atomic_open(run_dir / "config.yaml") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)

    model.train()
    done = best["accuracy"] >= 1.0 and t.early_stop
    bar = tqdm(total=max_steps, initial=step, desc="training", unit="step", dynamic_ncols=True, disable=None)
    while step < max_steps and not done:
        t0 = time.perf_counter()
        out = train_step(model, optimizer, scheduler, train_split, batches(step), t.grad_clip)
        step += 1
        elapsed += time.perf_counter() - t0
        bar.update(1)

        if step % t.eval_interval == 0 or step == max_steps:
            ev = evaluate(model, held_split)
            record = {"step": step, "time": round(time.time(), 3), "train_time_s": round(elapsed, 3),
                      "samples_per_s": round(step * batches.batch_size / elapsed, 1),
                      "lr": scheduler.get_last_lr()[0], "train_loss": out.loss.item(),
                      "train_head_losses": out.head_losses.tolist(),
                      **ev}
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{out.loss.item():.4f}", held_out=f"{ev['accuracy']:.4f}",
                            samples_s=f"{record['samples_per_s']:.0f}")
            if (ev["accuracy"], -ev["loss"]) > (best["accuracy"], -best["loss"]):
                best = {"accuracy": ev["accuracy"], "loss": ev["loss"], "step": step}
                save_model(model, tok, model_dir, {METRICS_FILE: metrics_path})
            done = t.early_stop and ev["accuracy"] >= 1.0
        if stop_after is not None and step >= stop_after:
            done = True
        if step % t.checkpoint_interval == 0 or done or step == max_steps:
            save_checkpoint(run_dir, step, model, optimizer, scheduler, best, elapsed)
    bar.close()
    if best["step"] > 0:
        _finish(run_dir, model_dir, data_dir / HELD_OUT_FILE, log)
    return {"steps": step, "train_time_s": elapsed, "best": best, "parameters": n_params,
            "samples_per_s": step * batches.batch_size / max(elapsed, 1e-9)}


def _finish(run_dir: Path, model_dir: Path, held_out: Path, log) -> None:
    """Training curves, and the saved best model measured by real decoding on the held-out file."""
    from .decoding import default_mode
    from .evaluation import evaluate_file, report, write_outputs
    from .loading import load_model
    from .plots import problem_attention, training_curves

    training_curves(run_dir / METRICS_FILE, run_dir / "training_curves.png")
    shutil.copyfile(run_dir / METRICS_FILE, model_dir / METRICS_FILE)
    shutil.copyfile(run_dir / "training_curves.png", model_dir / "training_curves.png")
    shutil.copyfile(run_dir / "config.yaml", model_dir / "training_config.yaml")
    model, tok = load_model(str(model_dir))
    result = evaluate_file(model, tok, held_out, default_mode(model))
    write_outputs(result, model_dir, held_out.name)
    hi = model.config.max_operand
    a, b = (101, 1002) if hi >= 1002 else (hi // 3, hi)  # the README's example, when in range
    problem_attention(model, tok, a, b, model_dir / "attention_visualizations")
    log(report(result))


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint we resume from; the resumed run logs them again."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    with atomic_open(path) as f:
        f.write("".join(line + "\n" for line in keep))
