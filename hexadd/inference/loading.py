"""Load a model and its tokenizer from a local folder or a Hub repo id, in this project's or the reference format."""
import json
from pathlib import Path

from ..hub.download import REPO_ID, download
from ..common.errors import ModelError
from ..data.tokenizer import check_tokenizer, load_tokenizer

REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def resolve(model: str, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a Hub repo id, downloaded (or found in the cache offline)."""
    path = Path(model)
    if path.exists() or not REPO_ID.match(model):
        if not path.is_dir():
            raise ModelError(f"model folder {model} not found: train one with trainer.py or give a Hub repo id (user/name)")
        return path
    return download(model, revision)


def check_complete(path: Path, name: str) -> None:
    """A model folder must hold weights, config and tokenizer before it is loaded or published."""
    missing = [f for f in REQUIRED if not (path / f).is_file()]
    if missing:
        raise ModelError(f"model folder {name} is incomplete: missing {', '.join(missing)}")


def load_model(model: str, revision: str | None = None, device=None):
    """(model, tokenizer) in eval mode, on `device` (default the CPU); weights only from safetensors."""
    path = resolve(model, revision)
    check_complete(path, model)
    try:
        raw = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError:
        raise ModelError(f"{model}/config.json is not valid JSON") from None

    from .reference import is_reference, load_reference
    if is_reference(raw):
        model_obj, tok = load_reference(path, raw)
    else:
        from transformers import AutoModelForCausalLM
        from ..modeling.model import HexAddConfig
        if raw.get("model_type") != HexAddConfig.model_type:
            raise ModelError(f"{model}: model_type {raw.get('model_type')!r} is not a hexadd model")
        tok = load_tokenizer(path)
        try:
            model_obj = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True).eval()
        except (OSError, ValueError, RuntimeError) as e:
            raise ModelError(f"{model}: the weights could not be loaded ({type(e).__name__})") from None
    check_tokenizer(tok, model_obj.config.base)
    # Eager attention decodes faster than sdpa on CPU at these sizes, most of all with the masked
    # slots verified decoding leaves (bench/decode_speed.py); on a GPU sdpa's fused kernels win.
    if device is not None:
        model_obj.to(device)
    on_cpu = device is None or str(device) == "cpu"
    model_obj.set_attn_implementation("eager" if on_cpu else "sdpa")
    return model_obj, tok
