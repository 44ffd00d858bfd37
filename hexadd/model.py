"""GPT-2 with block position ids and n prediction heads (head j at position t predicts token t+j).

Only torch, transformers and the sibling positions.py are imported: save_pretrained copies these
files next to published weights, so the Hub model loads with trust_remote_code=True alone.
"""
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (AutoConfig, AutoModelForCausalLM, DynamicCache, GenerationMixin, GPT2Config, GPT2Model,
                          GPT2PreTrainedModel)
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

from .positions import (NUMBERS, block_distance_bias, block_position_ids, number_ids, sequential_position_ids,
                        sinusoidal_table)

BLOCK_SCHEMES = ("block", "block_sinusoidal", "block_relative")
FIXED_SCHEMES = ("sinusoidal", "block_sinusoidal", "block_relative")  # a position table not trained


@strict
class HexAddConfig(GPT2Config):
    model_type = "hexadd-gpt2"

    n_predict: int = 2                  # prediction heads; head 1 is the usual next-token head
    position_scheme: str = "block"      # block | learned | sinusoidal | block_sinusoidal | block_relative
    relative_distance: int = 4          # block_relative: one learned attention bias per head and block distance,
                                        # key minus query, clipped to +-this
    relative_window: bool = False       # block_relative: attend only to keys within +-relative_distance
    max_offset: int = 0                 # training-time random offset added to block positions
    offset_per: str = "batch"           # batch: one offset for every row; sample: one per row
    offset_scope: str = "digits"        # digits: `+` stays at 0 (Abacus); row: `+` shifts too (Position Coupling);
                                        # answer: the answer's `+` shifts, the operands' stay at 0
    number_embedding: bool = False      # add an embedding of which number a token is in (operand 1, 2, answer)
    digit_token_ids: list[int] | None = None
    sinusoidal_theta: float = 10000.0
    # What the model was trained on, so inference can speak decimal and flag out-of-range input.
    base: int = 16
    reverse: bool = True
    min_operand: int = 0
    max_operand: int = 9999
    dataset: str | None = None          # the Hub dataset repo it was trained on, when there is one


@dataclass
class HexAddOutput(CausalLMOutputWithCrossAttentions):
    """`logits` are head 1's; `head_logits` stacks all heads: (n_predict, B, T, V)."""
    head_logits: torch.FloatTensor | None = None
    head_losses: torch.FloatTensor | None = None


class PredictionHead(nn.Module):
    """Head j >= 2: a residual block on the trunk's last hidden state, then the shared (tied) unembedding."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.proj = nn.Linear(n_embd, n_embd)
        self.act = nn.SiLU()

    def forward(self, h):  # (B, T, C) -> (B, T, C)
        return h + self.act(self.proj(h))


class _LastBlockReached(Exception):
    """Stops the trunk at its last block's input (head1_logits_from)."""


class HexAddForCausalLM(GPT2PreTrainedModel, GenerationMixin):
    config_class = HexAddConfig
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}
    _supports_sdpa = True

    def __init__(self, config: HexAddConfig):
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.heads = nn.ModuleList(PredictionHead(config.n_embd) for _ in range(config.n_predict - 1))
        self.number_wte = nn.Embedding(NUMBERS, config.n_embd) if config.number_embedding else None
        self.distance_bias = (nn.Parameter(torch.zeros(config.n_head, 2 * config.relative_distance + 1))
                              if config.position_scheme == "block_relative" else None)
        self._digit_ids = None
        self.post_init()
        if config.position_scheme in FIXED_SCHEMES:
            # Set after post_init: GPT2Model initializes its own table, out of reach of an _init_weights here.
            wpe = self.transformer.wpe.weight
            with torch.no_grad():
                if config.position_scheme == "block_relative":  # positions act only through the attention bias
                    wpe.zero_()
                else:
                    wpe.copy_(sinusoidal_table(config.n_positions, config.n_embd, config.sinusoidal_theta))
            wpe.requires_grad_(False)

    def digit_ids(self, device) -> torch.Tensor:
        if self._digit_ids is None or self._digit_ids.device != device:
            self._digit_ids = torch.tensor(self.config.digit_token_ids or [], dtype=torch.long, device=device)
        return self._digit_ids

    def position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Position ids for whole rows (no offset), per the configured scheme."""
        if self.config.position_scheme in BLOCK_SCHEMES:
            return block_position_ids(input_ids, self.digit_ids(input_ids.device), attention_mask)
        return sequential_position_ids(attention_mask)

    def number_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Which number each token is in, for models with a number embedding (else None)."""
        if self.number_wte is None:
            return None
        return number_ids(input_ids, self.digit_ids(input_ids.device), attention_mask)

    def shifted(self, input_ids, attention_mask, position_ids) -> torch.Tensor:
        """Which tokens the training offset moves, per `offset_scope`."""
        scope = self.config.offset_scope
        if scope == "row":
            return attention_mask.bool()
        digits = position_ids > 0
        if scope == "answer":
            answer = number_ids(input_ids, self.digit_ids(input_ids.device), attention_mask) >= 2
            return digits | (answer & attention_mask.bool())
        return digits

    def trunk(self, input_ids, attention_mask=None, position_ids=None, cache=None, number_ids=None,
              key_position_ids=None, **kwargs):
        """The GPT-2 trunk with this model's positions (and training offset), number embedding and attention bias.

        With a cache holding earlier tokens, pass what depends on them: the fed tokens' `position_ids`,
        (with a number embedding) their `number_ids`, and (block_relative) every token's `key_position_ids`."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            if cache is not None and cache.get_seq_length() > 0:
                raise ValueError("pass position_ids when decoding with a cache: block positions depend on earlier tokens")
            position_ids = self.position_ids(input_ids, attention_mask)
            if self.training and self.config.max_offset > 0 and self.config.position_scheme in BLOCK_SCHEMES:
                # A random shift of every digit position (Abacus): later positions get trained, so longer
                # numbers have embeddings. Shared by a row's numbers, so equal significance stays aligned.
                # Shifting the `+` too keeps "the next digit is at my position + 1" true for the token
                # that predicts an answer's first digit, as for every later one; keeping the operands' `+`
                # at 0 (scope `answer`) hides how far a digit is from the start of its number.
                shape = (input_ids.shape[0], 1) if self.config.offset_per == "sample" else ()
                offset = torch.randint(0, self.config.max_offset + 1, shape, device=input_ids.device)
                shifted = self.shifted(input_ids, attention_mask, position_ids)
                position_ids = position_ids + offset * shifted
        if self.number_wte is not None:
            if number_ids is None:
                if cache is not None and cache.get_seq_length() > 0:
                    raise ValueError("pass number_ids when decoding with a cache: they depend on earlier tokens")
                number_ids = self.number_ids(input_ids, attention_mask)
            kwargs["inputs_embeds"] = self.transformer.wte(input_ids) + self.number_wte(number_ids)
            input_ids = None
        if self.distance_bias is not None:
            if key_position_ids is None:
                if cache is not None and cache.get_seq_length() > 0:
                    raise ValueError("pass key_position_ids (every token's, cached ones too) when decoding with a cache")
                key_position_ids = position_ids
            # A 4-d float mask reaches every layer's attention as is: the bias, and -inf where causal or padding.
            attention_mask = block_distance_bias(key_position_ids, attention_mask, self.distance_bias,
                                                 position_ids.shape[1], self.config.relative_window)
            # The table is all zeros and only distances count: ids past its end read its last row, any length runs.
            position_ids = position_ids.clamp(max=self.config.n_positions - 1)
        # attention_mask must go with custom position_ids: without it, transformers reads a non +1 step
        # in position_ids as a new packed sequence and blocks attention across numbers.
        return self.transformer(input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                                **kwargs)

    def head1_logits_from(self, input_ids, attention_mask, start: int) -> torch.Tensor:
        """Head 1's logits at positions `start`.. of whole rows, (B, T - start, V): forward(...).logits[:, start:]
        (in eval mode), with less work. Checking an answer needs head 1 at the answer's positions only, and the
        last block gives the earlier positions nothing but keys and values: it runs on the rest alone, those
        keys and values passed in as a cache. For the default 3-layer model, a sixth of the work."""
        block = self.transformer.h[-1]
        if start <= 0:
            return self(input_ids, attention_mask=attention_mask).logits
        signature, seen = inspect.signature(block.forward), {}

        def stop(module, args, kwargs):
            seen.update(signature.bind(*args, **kwargs).arguments)
            raise _LastBlockReached

        hook = block.register_forward_pre_hook(stop, with_kwargs=True)
        try:
            self.trunk(input_ids, attention_mask, use_cache=False)
        except _LastBlockReached:
            pass
        finally:
            hook.remove()
        h, mask = seen["hidden_states"], seen.get("attention_mask")
        attn, (rows, t) = block.attn, input_ids.shape
        if mask is None:  # a causal mask the kernel would have implied; with fewer queries than keys it must be explicit
            causal = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()
            mask = torch.zeros(t, t, dtype=h.dtype, device=h.device).masked_fill(~causal, torch.finfo(h.dtype).min)[None, None]
        _, keys, values = attn.c_attn(block.ln_1(h[:, :start])).split(attn.split_size, dim=2)
        cache = DynamicCache()
        cache.update(*(x.view(rows, start, -1, attn.head_dim).transpose(1, 2) for x in (keys, values)), attn.layer_idx)
        out = block(h[:, start:], cache, mask[:, :, start:], use_cache=True)
        out = out[0] if isinstance(out, tuple) else out
        return self.lm_head(self.transformer.ln_f(out))

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, labels=None,
                number_ids=None, key_position_ids=None, **kwargs) -> HexAddOutput:
        out = self.trunk(input_ids, attention_mask, position_ids, cache, number_ids, key_position_ids, **kwargs)
        h = out.last_hidden_state                                         # (B, T, C)
        logits = self.lm_head(h)                                          # (B, T, V)
        head_logits = torch.stack([logits] + [self.lm_head(head(h)) for head in self.heads])  # (n, B, T, V)

        loss = head_losses = None
        if labels is not None:
            # Head j at position t predicts token t+j; labels are -100 outside the answer.
            losses = [F.cross_entropy(lg[:, :-j].flatten(0, 1), labels[:, j:].flatten(), ignore_index=-100)
                      for j, lg in enumerate(head_logits, 1) if lg.shape[1] > j]
            head_losses = torch.stack(losses)
            loss = head_losses.mean()
        return HexAddOutput(loss=loss, logits=logits, head_logits=head_logits, head_losses=head_losses,
                            cache=out.cache, hidden_states=out.hidden_states, attentions=out.attentions)


HexAddConfig.register_for_auto_class()
HexAddForCausalLM.register_for_auto_class("AutoModelForCausalLM")
AutoConfig.register(HexAddConfig.model_type, HexAddConfig, exist_ok=True)
AutoModelForCausalLM.register(HexAddConfig, HexAddForCausalLM, exist_ok=True)
