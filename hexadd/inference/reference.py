"""Checkpoints in the reference project's published format (`model_type: custom-gpt2`), mapped onto HexAddForCausalLM.

Its config.json holds the GPT-2 fields plus an `embedding` dict; its weights are a GPT-2 LM state dict
(one prediction head); its tokenizer uses `<|pad|>` and `<|UNK|>`. Block positions use the stored
`block_digit_ids` exactly, even where they differ from the tokenizer's digits: the weights were trained with them.
"""
from pathlib import Path

from safetensors.torch import load_file
from transformers import PreTrainedTokenizerFast

from ..common.errors import ModelError
from ..modeling.model import HexAddConfig, HexAddForCausalLM

MODEL_TYPE = "custom-gpt2"
SCHEMES = {"block": "block", None: "learned"}
GPT2_FIELDS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "activation_function",
               "layer_norm_epsilon", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")


def is_reference(raw_config: dict) -> bool:
    return raw_config.get("model_type") == MODEL_TYPE


def load_reference(path: Path, raw: dict):
    emb = raw.get("embedding") or {}
    kind = emb.get("embedding_type")
    if kind not in SCHEMES:
        raise ModelError(f"{path}: reference embedding_type {kind!r} is not supported (supported: block, null)")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), pad_token="<|pad|>", unk_token="<|UNK|>")
    pad = tok.pad_token_id
    config = HexAddConfig(
        **{k: raw[k] for k in GPT2_FIELDS if k in raw},
        bos_token_id=pad, eos_token_id=pad, pad_token_id=pad,
        n_predict=1, position_scheme=SCHEMES[kind], max_offset=int(emb.get("data_offset") or 0),
        digit_token_ids=list(emb.get("block_digit_ids") or []),
        # The reference models add hexadecimal numbers up to 9999.
        base=16, reverse=True, min_operand=0, max_operand=9999,
    )
    model = HexAddForCausalLM(config)
    missing, unexpected = model.load_state_dict(load_file(path / "model.safetensors"), strict=False)
    unexpected = [k for k in unexpected if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ModelError(f"{path}: weights do not match a GPT-2 of this shape "
                         f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    model.tie_weights()
    return model.eval(), tok
