"""GPT-2 with block position ids and n prediction heads (head j at position t predicts token t+j); the block-window
scheme attends only to keys within a few block positions of the query, so any length runs in linear memory.

Only torch, transformers and the siblings positions.py and schemes.py are imported: save_pretrained copies these
files next to published weights, so the Hub model loads with trust_remote_code=True alone.
"""
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (AttentionInterface, AutoConfig, AutoModelForCausalLM, DynamicCache, GenerationMixin,
                          GPT2Config, GPT2Model, GPT2PreTrainedModel)
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

from .positions import NUMBERS, block_position_ids, block_window, number_ids, sequential_position_ids, sinusoidal_table
from .schemes import SCHEMES, Scheme

ATTENTION = "block_window"        # its attention function's name in transformers' AttentionInterface
DENSE_KEYS = 256                  # up to this many key columns, one dense tile; beyond, each query's keys gathered


@strict
class HexAddConfig(GPT2Config):
    model_type = "hexadd-gpt2"

    n_predict: int = 2                  # prediction heads; head 1 is the usual next-token head
    draft_head: str = "mlp"             # heads 2..n: mlp (a residual MLP on the trunk's output) | block (a
                                        # transformer block of their own, as in multi-token prediction)
    position_scheme: str = "block"      # block | learned | sinusoidal | block_sinusoidal | block_relative
    window: int = 2                     # block_relative: keys within +-window block positions, one learned bias
                                        # per layer, head and distance; no other key is attended
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

    @property
    def scheme(self) -> Scheme:
        return SCHEMES[self.position_scheme]

    @property
    def windowed(self) -> bool:
        return self.scheme.windowed


def block_window_attention(module, query, key, value, attention_mask=None, dropout=0.0, scaling=None, window=None,
                           **kwargs):
    """Attention of a block-window model: each query attends to the keys of its `window` (positions.Window), with
    the window's learned bias for their block distance (`window.bias`, (H, 2D + 1)). (B, H, Tq, hd)
    queries, (B, H, Tk, hd) keys and values; returns (B, Tq, H, hd) and the weights (over the keys up to the last
    one read where Tq < Tk).

    Up to DENSE_KEYS key columns a row (those up to the last one read) it is one dense (Tq, keys) tile with the
    window as its mask: a matmul reads each key once for all queries, where gathering copies it for each of its
    queries, so up to about 12 times K columns the tile is faster on a CPU (bench/attention_speed.py). Beyond,
    each query gathers its at most 4 (2D + 1) keys, in slices of queries: memory and work grow with the length,
    not with its square. Both compute the same sum."""
    B, H, Tq, hd = query.shape
    Tk, K = key.shape[2], window.index.shape[-1]
    used = window.keys_used
    if used <= DENSE_KEYS:
        scores = query @ key[:, :, :used].transpose(-1, -2) * scaling + window.dense_bias(used, query.dtype)
        weights = F.dropout(scores.softmax(-1), p=dropout, training=module.training)            # (B, H, Tq, used)
        out = (weights @ value[:, :, :used]).transpose(1, 2)
        # Over every key for a pass over whole rows (figures); a decoding pass, read by no one, keeps the columns read.
        return out, F.pad(weights, (0, Tk - used)) if used < Tk == Tq else weights
    D = (window.bias.shape[1] - 1) // 2
    bias = window.bias[:, window.distance + D].to(query.dtype)                                 # (H, K)
    low = torch.finfo(query.dtype).min
    # Keys and values as (B * H * Tk, hd) rows, so that a query's keys are rows picked without copying the cache.
    keys, values = key.reshape(B * H * Tk, hd), value.reshape(B * H * Tk, hd)
    head_rows = ((torch.arange(B, device=key.device)[:, None] * H + torch.arange(H, device=key.device)) * Tk)[..., None, None]
    out, weights = [], []
    step = max(1, 2**22 // (B * H * K * hd))
    for s in range(0, Tq, step):
        index, allowed = window.index[:, s:s + step], window.allowed[:, s:s + step]            # (B, q, K)
        q = query[:, :, s:s + step]                                                             # (B, H, q, hd)
        n = q.shape[2]
        pick = (index[:, None] + head_rows).flatten()                                           # (B * H * q * K,)
        k = keys.index_select(0, pick).view(B * H * n, K, hd)
        v = values.index_select(0, pick).view(B * H * n, K, hd)
        score = (k @ q.reshape(B * H * n, hd, 1)).view(B, H, n, K) * scaling + bias[:, None]   # (B, H, q, K)
        w = score.masked_fill(~allowed[:, None], low).softmax(-1)
        w = F.dropout(w, p=dropout, training=module.training)
        out.append((w.view(B * H * n, 1, K) @ v).view(B, H, n, hd).transpose(1, 2))          # (B, q, H, hd)
        weights.append(w)                                                                       # (B, H, q, K)
    return torch.cat(out, 1), torch.cat(weights, 2)


AttentionInterface.register(ATTENTION, block_window_attention)


@dataclass
class HexAddOutput(CausalLMOutputWithCrossAttentions):
    """`logits` are head 1's; `head_logits` stacks the heads computed: (n, B, T, V); `state` is the trunk's last
    hidden state, where draft blocks start (`draft`)."""
    head_logits: torch.FloatTensor | None = None
    head_losses: torch.FloatTensor | None = None
    state: torch.FloatTensor | None = None


def cache_keys_only(block: GPT2Block, hidden_states: torch.Tensor, cache) -> None:
    """Append the keys and values `block` would cache for (B, T, C) `hidden_states` to its layer of `cache`, without
    computing the block's output there: what a position gives later queries when its own output is not read."""
    attn, (B, T, _) = block.attn, hidden_states.shape
    _, keys, values = attn.c_attn(block.ln_1(hidden_states)).split(attn.split_size, dim=2)
    cache.update(*(x.view(B, T, -1, attn.head_dim).transpose(1, 2) for x in (keys, values)), attn.layer_idx)


class PredictionHead(nn.Module):
    """Head j >= 2 (draft_head: mlp): a residual block on the trunk's last hidden state, then the shared (tied)
    unembedding."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.proj = nn.Linear(n_embd, n_embd)
        self.act = nn.SiLU()

    def forward(self, h, **kwargs):  # (B, T, C) -> (B, T, C)
        return h + self.act(self.proj(h))


class DraftBlock(nn.Module):
    """Head j >= 2 (draft_head: block), multi-token prediction as in DeepSeek-V3: the previous head's hidden state
    at position t and the embedding of token t+j-1, the token before head j's target, joined and projected, then a
    transformer block of its own, a LayerNorm and the shared (tied) unembedding. Given token t+j-1 (the true one in
    training; in decoding the one head j-1 chose), head j's task is head 1's one place further on: for addition,
    the next answer digit from the digits beside it, which a window holds. Its keys and values go into the cache
    after the trunk's."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        C, eps = config.n_embd, config.layer_norm_epsilon
        self.ln_state, self.ln_token = nn.LayerNorm(C, eps=eps), nn.LayerNorm(C, eps=eps)
        self.join = nn.Linear(2 * C, C, bias=False)
        self.block = GPT2Block(config, layer_idx=layer_idx)
        self.ln = nn.LayerNorm(C, eps=eps)
        # A block-window model's draft block attends with a bias of its own: it looks further ahead than the trunk.
        self.distance_bias = nn.Parameter(torch.zeros(config.n_head, 2 * config.window + 1)) if config.windowed else None

    def forward(self, state, token_embeds, window=None, start: int = 0, **kwargs):  # (B, T, C), (B, T, C) -> (B, T - start, C)
        """The block's output at positions `start`..: the next draft block's state; self.ln of it gives this head's
        logits. Positions before `start` (decoding, where their drafts are not read) only add their keys and values
        to the cache: in a prompt's pass that is all but its last position."""
        x = self.join(torch.cat([self.ln_state(state), self.ln_token(token_embeds)], dim=-1))
        if start:
            if kwargs.get("cache") is None:
                raise ValueError("a draft block run from a position needs the cache its earlier keys go into")
            cache_keys_only(self.block, x[:, :start], kwargs["cache"])
            x, window = x[:, start:], window.rows(start) if window is not None else None
            if kwargs.get("attention_mask") is not None:
                kwargs["attention_mask"] = kwargs["attention_mask"][:, :, start:]
        if window is not None:
            kwargs["window"] = window.with_bias(self.distance_bias)
        out = self.block(x, **kwargs)
        return out[0] if isinstance(out, tuple) else out


def head_targets(labels: torch.Tensor, j: int, windowed: bool) -> torch.Tensor:
    """(B, T - j) what head j at positions 0..T-j-1 is trained to predict: token t+j where labels (-100 outside
    the answer) has one. A windowed model's head j learns only targets whose token t+1 is in the answer too,
    the drafts decoding asks of it: from the second operand's last digits it could not even see the answer's
    first ones (head 2's loss stalled at 0.26). A model attending to everything keeps them: predicting the
    answer's first digit a token early is what teaches its trunk to add in time (the tiny test model: 99.8%
    held-out after 1,200 steps with them, 15% without)."""
    if not windowed:
        return labels[:, j:]
    T = labels.shape[1]
    return labels[:, j:].masked_fill(labels[:, 1:T - j + 1] == -100, -100)


class _LastBlockReached(Exception):
    """Stops the trunk at its last block's input (head1_logits_from)."""


class HexAddForCausalLM(GPT2PreTrainedModel, GenerationMixin):
    config_class = HexAddConfig
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}
    _supports_sdpa = True

    def __init__(self, config: HexAddConfig):
        super().__init__(config)
        if config.draft_head not in ("mlp", "block"):
            raise ValueError(f"draft_head must be mlp or block, got {config.draft_head!r}")
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.draft_head == "block":
            self.heads = nn.ModuleList(DraftBlock(config, config.n_layer + j) for j in range(config.n_predict - 1))
        else:
            self.heads = nn.ModuleList(PredictionHead(config.n_embd) for _ in range(config.n_predict - 1))
        self.number_wte = nn.Embedding(NUMBERS, config.n_embd) if config.number_embedding else None
        # Block-window models: one learned bias per head and block distance, shared by the trunk's layers.
        self.distance_bias = nn.Parameter(torch.zeros(config.n_head, 2 * config.window + 1)) if config.windowed else None
        self._digit_ids = None
        self.post_init()
        if config.scheme.table != "learned":  # a fixed table, or none (windowed): not trained
            # Set after post_init: GPT2Model initializes its own table, out of reach of an _init_weights here.
            wpe = self.transformer.wpe.weight
            with torch.no_grad():
                if config.windowed:  # positions act only through the attention bias
                    wpe.zero_()
                    for table in self.distance_biases():
                        table.zero_()
                else:
                    wpe.copy_(sinusoidal_table(config.n_positions, config.n_embd, config.sinusoidal_theta))
            wpe.requires_grad_(False)
        if config.windowed:
            self.set_attn_implementation(ATTENTION)

    def distance_biases(self) -> list[nn.Parameter]:
        """A block-window model's attention biases by distance: the trunk's, then each draft block's."""
        return [p for p in [self.distance_bias] + [getattr(h, "distance_bias", None) for h in self.heads] if p is not None]

    def set_attn_implementation(self, attn_implementation, *args, **kwargs):
        # A block-window model has one attention: its window is its positions. It returns weights for plots too.
        if self.config.windowed:
            attn_implementation = ATTENTION
        return super().set_attn_implementation(attn_implementation, *args, **kwargs)

    def digit_ids(self, device) -> torch.Tensor:
        if self._digit_ids is None or self._digit_ids.device != device:
            self._digit_ids = torch.tensor(self.config.digit_token_ids or [], dtype=torch.long, device=device)
        return self._digit_ids

    def position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Position ids for whole rows (no offset), per the configured scheme."""
        if self.config.scheme.block:
            return block_position_ids(input_ids, self.digit_ids(input_ids.device), attention_mask)
        return sequential_position_ids(attention_mask)

    def number_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Which number each token is in: 0 first operand, 1 second, 2 answer, 3 after it."""
        return number_ids(input_ids, self.digit_ids(input_ids.device), attention_mask)

    def shifted(self, input_ids, attention_mask, position_ids) -> torch.Tensor:
        """Which tokens the training offset moves, per `offset_scope`."""
        scope = self.config.offset_scope
        if scope == "row":
            return attention_mask.bool()
        digits = position_ids > 0
        if scope == "answer":
            answer = self.number_ids(input_ids, attention_mask) >= 2
            return digits | (answer & attention_mask.bool())
        return digits

    def trunk(self, input_ids, attention_mask=None, position_ids=None, cache=None, number_ids=None, window=None,
              **kwargs):
        """The GPT-2 trunk with this model's positions (and training offset), number embedding and window.

        With a cache holding earlier tokens, pass what depends on them: the fed tokens' `position_ids`, (with a
        number embedding) their `number_ids`, and (block-window models) their `window` over every key."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        cached = cache is not None and cache.get_seq_length() > 0
        if position_ids is None:
            if cached:
                raise ValueError("pass position_ids when decoding with a cache: block positions depend on earlier tokens")
            position_ids = self.position_ids(input_ids, attention_mask)
            if self.training and self.config.max_offset > 0 and self.config.scheme.block:
                # A random shift of every digit position (Abacus): later positions get trained, so longer
                # numbers have embeddings. Shared by a row's numbers, so equal significance stays aligned.
                # Shifting the `+` too keeps "the next digit is at my position + 1" true for the token
                # that predicts an answer's first digit, as for every later one; keeping the operands' `+`
                # at 0 (scope `answer`) hides how far a digit is from the start of its number.
                shape = (input_ids.shape[0], 1) if self.config.offset_per == "sample" else ()
                offset = torch.randint(0, self.config.max_offset + 1, shape, device=input_ids.device)
                shifted = self.shifted(input_ids, attention_mask, position_ids)
                position_ids = position_ids + offset * shifted
        if (self.number_wte is not None or self.config.windowed) and number_ids is None:
            if cached:
                raise ValueError("pass number_ids when decoding with a cache: they depend on earlier tokens")
            number_ids = self.number_ids(input_ids, attention_mask)
        if self.number_wte is not None:
            kwargs["inputs_embeds"] = self.transformer.wte(input_ids) + self.number_wte(number_ids)
            input_ids = None
        if self.config.windowed:
            if window is None:
                if cached:
                    raise ValueError("pass the window (every key's) when decoding with a cache")
                window = block_window(position_ids, number_ids, attention_mask, self.config.window)
            window = window.with_bias(self.distance_bias)
            kwargs["window"] = window
            # The table is all zeros and only distances count: ids past its end read its last row, any length runs.
            position_ids = position_ids.clamp(max=self.config.n_positions - 1)
        # attention_mask must go with custom position_ids: without it, transformers reads a non +1 step
        # in position_ids as a new packed sequence and blocks attention across numbers.
        out = self.transformer(input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                               **kwargs)
        out.window = window
        return out

    def head1_logits_from(self, input_ids, attention_mask, start: int) -> torch.Tensor:
        """Head 1's logits at positions `start`.. of whole rows, (B, T - start, V): forward(...).logits[:, start:]
        (in eval mode), with less work. Checking an answer needs head 1 at the answer's positions only, and the
        last block gives the earlier positions nothing but keys and values: it runs on the rest alone, those
        keys and values passed in as a cache. For the default 3-layer model, a sixth of the work."""
        block = self.transformer.h[-1]
        if start <= 0:
            return self(input_ids, attention_mask=attention_mask, heads=1).logits
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
        h, mask, extra = seen["hidden_states"], seen.get("attention_mask"), dict(seen.get("kwargs", {}))
        t = input_ids.shape[1]
        if "window" in extra:
            extra["window"] = extra["window"].rows(start)
        elif mask is None:  # a causal mask the kernel would have implied; with fewer queries than keys it must be explicit
            causal = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()
            mask = torch.zeros(t, t, dtype=h.dtype, device=h.device).masked_fill(~causal, torch.finfo(h.dtype).min)[None, None]
        if mask is not None:
            mask = mask[:, :, start:]
        extra.pop("position_ids", None)
        cache = DynamicCache()
        cache_keys_only(block, h[:, :start], cache)
        out = block(h[:, start:], cache, mask, use_cache=True, **extra)
        out = out[0] if isinstance(out, tuple) else out
        return self.lm_head(self.transformer.ln_f(out))

    def draft_kwargs(self, h, attention_mask, position_ids, input_ids, cache, window, use_cache) -> dict:
        """What a draft block's attention needs besides its input: the cache, and the window or the causal mask."""
        kwargs = {"cache": cache, "use_cache": use_cache}
        if self.config.windowed:
            kwargs["window"] = window
        else:
            kwargs["attention_mask"] = create_causal_mask(
                config=self.config, inputs_embeds=h, attention_mask=attention_mask, cache=cache,
                position_ids=position_ids if position_ids is not None else self.position_ids(input_ids, attention_mask),
                layer_idx=self.config.n_layer)
        return kwargs

    def draft(self, j: int, state, tokens=None, **kwargs):
        """Head j >= 2: its state and logits. An MLP head reads the trunk's `state` alone (and passes it on
        unchanged, so the heads chain the same way). A draft block reads the previous head's `state` (the trunk's
        for j = 2) and `tokens`, token t+j-1 at each position t; the trunk's state comes in detached: the trunk
        learns from head 1 alone, as it would without drafts, and head 1 decides every answer."""
        head = self.heads[j - 2]
        if self.config.draft_head == "mlp":
            return state, self.lm_head(head(state))
        state = head(state.detach() if j == 2 else state, self.transformer.wte(tokens), **kwargs)
        return state, self.lm_head(head.ln(state))

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, labels=None,
                number_ids=None, window=None, heads: int | None = None, **kwargs) -> HexAddOutput:
        """`heads`: how many prediction heads to compute (default all; decoding with head 1 alone needs one). Draft
        blocks read the true next tokens from `input_ids` (teacher forcing); decoding calls `draft` itself."""
        out = self.trunk(input_ids, attention_mask, position_ids, cache, number_ids, window, **kwargs)
        h = out.last_hidden_state                                         # (B, T, C)
        logits = self.lm_head(h)                                          # (B, T, V)
        drafts = self.heads[:(self.config.n_predict if heads is None else heads) - 1]
        head_logits = [logits]
        if drafts and self.config.draft_head == "block":
            draft_kwargs = self.draft_kwargs(h, attention_mask, position_ids, input_ids, cache, out.window,
                                             kwargs.get("use_cache", False))
            state, pad = h, self.config.pad_token_id
            for j in range(2, len(drafts) + 2):  # token t+j-1 beside position t; past the end, padding
                tokens = F.pad(input_ids[:, j - 1:], (0, j - 1), value=pad)
                state, lg = self.draft(j, state, tokens, **draft_kwargs)
                head_logits.append(lg)
        else:
            head_logits += [self.draft(j, h)[1] for j in range(2, len(drafts) + 2)]
        head_logits = torch.stack(head_logits)                            # (n, B, T, V)

        loss = head_losses = None
        if labels is not None:
            losses = [F.cross_entropy(lg[:, :-j].flatten(0, 1), head_targets(labels, j, self.config.windowed).flatten(), ignore_index=-100)
                      for j, lg in enumerate(head_logits, 1) if lg.shape[1] > j]
            head_losses = torch.stack(losses)
            loss = head_losses.mean()
        return HexAddOutput(loss=loss, logits=logits, head_logits=head_logits, head_losses=head_losses,
                            cache=out.cache, hidden_states=out.hidden_states, attentions=out.attentions, state=h)


HexAddConfig.register_for_auto_class()
HexAddForCausalLM.register_for_auto_class("AutoModelForCausalLM")
AutoConfig.register(HexAddConfig.model_type, HexAddConfig, exist_ok=True)
AutoModelForCausalLM.register(HexAddConfig, HexAddForCausalLM, exist_ok=True)
