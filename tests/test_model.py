import pytest
import torch

from conftest import ROOT
from hexadd.config.schema import TrainConfig
from hexadd.config.files import load
from hexadd.modeling.model import HexAddConfig, HexAddForCausalLM
from hexadd.modeling.positions import block_position_ids, number_ids, sinusoidal_table
from hexadd.train.prepare import param_groups
from transformers import AutoModelForCausalLM, DynamicCache

# Alphabet of the default tokenizer: pad 0, unk 1, `+` 2, digits 0-9A-F at 3..18.
SEP, DIGIT = 2, {c: 3 + i for i, c in enumerate("0123456789ABCDEF")}


def ids(text):
    return torch.tensor([[SEP if c == "+" else DIGIT[c] for c in text]])


def tiny(**kw):
    cfg = HexAddConfig(**{"vocab_size": 19, "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 16, "pad_token_id": 0,
                          "bos_token_id": 0, "eos_token_id": 0, "digit_token_ids": list(range(3, 19)), **kw})
    torch.manual_seed(0)
    return HexAddForCausalLM(cfg).eval()


def test_block_positions_match_the_guide():
    x = ids("+1342+879+2221+")
    pos = block_position_ids(x, torch.arange(3, 19), torch.ones_like(x))
    assert "".join(map(str, pos[0].tolist())) == "012340123012340"


def test_block_positions_skip_padding_and_masked_slots():
    x = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids("+12+3+")], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    assert block_position_ids(x, torch.arange(3, 19), mask).tolist() == [[0, 0, 0, 0, 1, 2, 0, 1, 0]]
    # A masked digit inside a number does not count: `+1[5]2+` reads as `+12+`.
    x, mask = ids("+152+"), torch.tensor([[1, 1, 0, 1, 1]])
    assert block_position_ids(x, torch.arange(3, 19), mask).tolist() == [[0, 1, 0, 2, 0]]


def test_save_and_load_give_identical_logits(tmp_path):
    model = tiny(n_predict=3)
    x = ids("+1342+879+2221+")
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(again) is HexAddForCausalLM and again.config.n_predict == 3
    assert torch.equal(model(x).head_logits, again(x).head_logits)
    assert again.lm_head.weight is again.transformer.wte.weight
    assert (tmp_path / "model.safetensors").is_file()


def test_digits_of_b_attend_to_digits_of_a():
    """With custom positions, attention must still cross number boundaries (the attention_mask trap)."""
    model = tiny()
    model.set_attn_implementation("eager")
    x = ids("+1342+879+")
    attn = model(x, output_attentions=True).attentions  # per layer (B, H, T, T)
    first_b_digit, a_digits = 6, slice(1, 5)
    for a in attn:  # untrained: close to uniform over the 7 keys a causal query at 6 sees, A's 4 digits 4/7 of it
        row = a[0, :, first_b_digit]                                               # (H, T)
        assert torch.allclose(row.sum(-1), torch.ones(row.shape[0]), atol=1e-5)
        assert (row[:, first_b_digit + 1:] == 0).all()                             # no future key
        assert ((row[:, a_digits].sum(-1) - 4 / 7).abs() < 0.1).all(), row[:, a_digits].sum(-1)
    # Changing A changes what the model predicts after B.
    y = ids("+9342+879+")
    assert not torch.allclose(model(x).logits[0, -1], model(y).logits[0, -1])


def test_sdpa_and_eager_agree():
    model = tiny()
    x = ids("+1342+879+2221+")
    sdpa = model(x).head_logits
    model.set_attn_implementation("eager")
    assert torch.allclose(sdpa, model(x).head_logits, atol=1e-5)


def test_offset_only_while_training():
    model = tiny(max_offset=5)
    x = ids("+13+8+12+")
    model.eval()
    a, b = model(x).logits, model(x).logits
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(1)
    outs = {tuple(model(x).logits[0, -1].tolist()) for _ in range(8)}
    assert len(outs) > 1


def test_offset_per_batch_or_per_sample():
    """One shift for every row, or one per row; `+` keeps position 0 and a row's numbers stay aligned."""
    x = ids("+13+8+12+").repeat(64, 1)
    for per, rows_differ in (("batch", False), ("sample", True)):
        model = tiny(max_offset=5, offset_per=per).train()
        seen = {}
        model.transformer.register_forward_pre_hook(lambda _, args, kw: seen.update(pos=kw["position_ids"]),
                                                    with_kwargs=True)
        torch.manual_seed(0)
        model(x)
        pos, plain = seen["pos"], block_position_ids(x, torch.arange(3, 19), torch.ones_like(x))
        shift = pos - plain                                                # (64, T)
        assert (pos[plain == 0] == 0).all()
        assert (shift == shift[:, 1:2] * (plain > 0)).all()                # one shift per row, on every digit
        assert shift.min() >= 0 and shift.max() <= 5
        assert (len(set(shift[:, 1].tolist())) > 1) == rows_differ


def trained_shift(scope: str, x: torch.Tensor):
    """The offsets a training pass adds to x's block positions (64 rows: offsets 0..5 per row), and the model."""
    model = tiny(max_offset=5, offset_per="sample", offset_scope=scope).train()
    seen = {}
    model.transformer.register_forward_pre_hook(lambda _, args, kw: seen.update(pos=kw["position_ids"]),
                                                with_kwargs=True)
    torch.manual_seed(0)
    model(x)
    return seen["pos"] - block_position_ids(x, torch.arange(3, 19), torch.ones_like(x)), model, seen


def test_offset_scope_row_shifts_the_plus_signs_too():
    x = ids("+13+8+12+").repeat(64, 1)
    shift, model, seen = trained_shift("row", x)
    assert (shift == shift[:, :1]).all()                                   # `+` and digits alike
    assert len(set(shift[:, 0].tolist())) > 1 and shift.max() <= 5
    model.eval()(x)
    assert torch.equal(seen["pos"], block_position_ids(x, torch.arange(3, 19), torch.ones_like(x)))  # none at inference


def test_offset_scope_answer_keeps_the_operands_plus_signs_at_zero():
    x = ids("+13+8+12+").repeat(64, 1)                                      # tokens 0 and 3: the operands' `+`
    shift = trained_shift("answer", x)[0]
    assert (shift[:, [0, 3]] == 0).all()
    assert (shift == shift[:, 1:2] * torch.tensor([0, 1, 1, 0, 1, 1, 1, 1, 1])).all()  # the answer's `+` too
    assert len(set(shift[:, 1].tolist())) > 1 and shift.max() <= 5


def test_loss_only_on_answer_tokens_for_every_head():
    model = tiny(n_predict=2)
    x = ids("+13+8+12+")
    labels = torch.full_like(x, -100)
    labels[0, 6:] = x[0, 6:]
    out = model(x, labels=labels)
    assert out.head_losses.shape == (2,) and torch.isclose(out.loss, out.head_losses.mean())
    logits = out.head_logits
    expect1 = torch.nn.functional.cross_entropy(logits[0, 0, :-1], labels[0, 1:], ignore_index=-100)
    expect2 = torch.nn.functional.cross_entropy(logits[1, 0, :-2], labels[0, 2:], ignore_index=-100)
    assert torch.isclose(out.head_losses[0], expect1) and torch.isclose(out.head_losses[1], expect2)
    # A windowed model's head 2 drafts from the prompt's last `+` on: the answer's first token (column 6) is not
    # its target.
    model = tiny(n_predict=2, position_scheme="block_relative")
    out = model(x, labels=labels)
    targets2 = labels[0, 2:].clone()
    targets2[6 - 2] = -100
    expect2 = torch.nn.functional.cross_entropy(out.head_logits[1, 0, :-2], targets2, ignore_index=-100)
    assert torch.isclose(out.head_losses[1], expect2)


def test_configs_build_the_model_sizes_they_claim():
    """The merged configs through the trainer's own model construction, without training: the default is
    the 0.6M-parameter model the README trains, and the preset the 6.4M its file name says."""
    from hexadd.config.schema import DataConfig
    from hexadd.data.dataset import DataMeta
    from hexadd.data.encoding import ProblemEncoder
    from hexadd.data.numbers import format_problem
    from hexadd.train.prepare import build_model_config, longest
    from hexadd.data.tokenizer import train_tokenizer

    n = load(DataConfig, ROOT / "data_config.yaml").numbers
    meta = DataMeta(n.base, n.reverse, n.min_operand, n.max_operand)
    tok = train_tokenizer([format_problem(12, 34, n.base, n.reverse)])
    hi = torch.tensor([n.max_operand])
    sizes = {}
    for path in (ROOT / "train_config.yaml", ROOT / "configs" / "reference-6.4M.yaml"):
        cfg = load(TrainConfig, path)
        config = build_model_config(cfg, tok, meta, longest(tok, [ProblemEncoder(tok, n.base, n.reverse, n.max_operand)(hi, hi)]))
        model = HexAddForCausalLM(config)
        sizes[path.stem] = sum(p.numel() for p in model.parameters())
        assert (config.n_layer, config.n_embd, len(model.heads) + 1) == (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_predict)
    assert round(sizes["train_config"] / 1e6, 1) == 0.6 and round(sizes["reference-6.4M"] / 1e6, 1) == 6.4, sizes


def test_number_ids_count_the_plus_signs_before_a_token():
    x = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids("+12+3+15+")], dim=1)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    assert number_ids(x, torch.arange(3, 19), mask).tolist() == [[0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3]]
    mask[0, 5] = 0                                       # a masked `+` does not start a number
    assert number_ids(x, torch.arange(3, 19), mask).tolist() == [[0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2]]


def test_number_embedding_tells_the_operands_from_the_answer_and_decodes_with_a_cache():
    model = tiny(number_embedding=True)
    x = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids("+1342+879+2221+")], dim=1)
    mask = (x != 0).long()
    keep = mask.bool()
    full = model(x, attention_mask=mask).logits
    shift = torch.randn(model.config.n_embd)
    with torch.no_grad():
        model.number_wte.weight[2] += shift              # only the answer and what follows it change
    moved = model(x, attention_mask=mask).logits
    answer = number_ids(x, torch.arange(3, 19), mask)[0] >= 2
    assert torch.equal(full[0, keep[0] & ~answer], moved[0, keep[0] & ~answer])
    assert (full[0, answer] - moved[0, answer]).abs().amax(dim=-1).min() > 1e-3
    with torch.no_grad():
        model.number_wte.weight[2] -= shift
    pos, nums, cache, steps = model.position_ids(x, mask), model.number_ids(x, mask), DynamicCache(config=model.config), []
    for t in range(x.shape[1]):
        steps.append(model(x[:, t:t + 1], attention_mask=mask[:, :t + 1], position_ids=pos[:, t:t + 1],
                           number_ids=nums[:, t:t + 1], cache=cache, use_cache=True).logits)
    assert torch.allclose(full[keep], torch.cat(steps, dim=1)[keep], atol=1e-5)
    with pytest.raises(ValueError, match="number_ids"):
        model(x[:, -1:], attention_mask=mask, position_ids=pos[:, -1:], cache=cache, use_cache=True)


def test_fixed_position_tables_are_set_and_frozen():
    sinusoidal = tiny(position_scheme="block_sinusoidal").transformer.wpe.weight
    assert torch.equal(sinusoidal, sinusoidal_table(16, 32)) and not sinusoidal.requires_grad
    relative = tiny(position_scheme="block_relative").transformer.wpe.weight
    assert not relative.any() and not relative.requires_grad


def dense_window_attention(positions, valid):
    """The window by its definition, as a dense (B, H, T, T) reference: a key is attended when it is valid, not
    later than the query and within +-D block positions of it, with the layer's bias for that distance."""
    def attend(module, q, k, v, attention_mask=None, dropout=0.0, scaling=None, window=None, **kwargs):
        D = (window.bias.shape[1] - 1) // 2
        d = positions[:, None, :] - positions[:, :, None]                                      # (B, Tq, Tk)
        T = positions.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool).tril()[None] & valid.bool()[:, None, :] & (d.abs() <= D)
        bias = window.bias[:, d.clamp(-D, D) + D].transpose(0, 1)                               # (B, H, T, T)
        w = (q @ k.transpose(-1, -2) * scaling + bias.masked_fill(~allowed[:, None], torch.finfo(q.dtype).min)).softmax(-1)
        return (w @ v).transpose(1, 2), w
    return attend


def window_model(**kw):
    model = tiny(position_scheme="block_relative", window=2, number_embedding=True, n_predict=2, **kw)
    with torch.no_grad():
        for table in model.distance_biases():
            table.copy_(3 * torch.randn_like(table))
    return model


@pytest.mark.parametrize("draft_head", ["mlp", "block"])
@pytest.mark.parametrize("dense_keys", [128, 0])
def test_block_window_attention_equals_the_dense_definition(monkeypatch, draft_head, dense_keys):
    """Both paths of the window (one dense tile; each query's keys gathered) give the logits of a dense attention
    that applies the window's definition to every (query, key) pair, for every head."""
    import hexadd.modeling.model as modeling
    from transformers import AttentionInterface
    model = window_model(draft_head=draft_head)
    rows = ["+1342+879+2221+", "+12+3+15+", "+FFFF1+1+00002+", "+0+0+0+"]
    width = max(map(len, rows))
    x = torch.cat([torch.cat([ids(r), torch.zeros(1, width - len(r), dtype=torch.long)], 1) for r in rows])
    mask = (torch.arange(width) < torch.tensor([[len(r)] for r in rows])).long()
    monkeypatch.setattr(modeling, "DENSE_KEYS", dense_keys)
    with torch.no_grad():
        fast = model(x, attention_mask=mask).head_logits
        AttentionInterface.register(modeling.ATTENTION, dense_window_attention(model.position_ids(x, mask), mask))
        try:
            reference = model(x, attention_mask=mask).head_logits
        finally:
            AttentionInterface.register(modeling.ATTENTION, modeling.block_window_attention)
    keep = mask.bool()
    assert (fast - reference)[:, keep].abs().max() < 1e-5
    # Only distances count: every block position moved alike, or past the (all-zero) table's end, changes nothing.
    pos = model.position_ids(x, mask)
    with torch.no_grad():
        for moved in (pos + 3, pos + model.config.n_positions):
            assert torch.allclose(fast[0], model(x, attention_mask=mask, position_ids=moved).logits, atol=1e-5)


def test_block_window_keys_grow_with_the_length_not_its_square():
    """A window holds at most 4 (2D + 1) keys a query, whatever the length; the gathered path's weights say so."""
    from hexadd.modeling.positions import block_window
    model = window_model()
    for digits in (8, 300):
        x = ids("+" + "7" * digits + "+" + "8" * digits + "+" + "F" * digits + "1+")
        mask = torch.ones_like(x)
        window = block_window(model.position_ids(x, mask), model.number_ids(x, mask), mask, 2)
        assert window.index.shape == (1, x.shape[1], 20)
        # A digit deep inside the answer sees 5 keys in each operand and 3 (itself and 2 before) in the answer.
        assert window.allowed[0, -6].sum() == 13
    with torch.no_grad():
        out = model(x, attention_mask=mask, output_attentions=True)
    assert all(a.shape == (1, 2, x.shape[1], 20) for a in out.attentions)


def test_block_window_bias_is_learned_and_not_decayed():
    model = window_model()
    model.train()
    x = ids("+1342+879+2221+")
    labels = x.clone()
    labels[:, :10] = -100
    model(x, attention_mask=torch.ones_like(x), labels=labels).loss.backward()
    biases = model.distance_biases()
    assert all(b.grad.abs().sum() > 0 for b in biases)
    decay, no_decay = param_groups(model, 0.1)
    assert all(any(p is b for p in no_decay["params"]) for b in biases)
    assert not any(p is b for b in biases for p in decay["params"]) and decay["params"]


def test_an_answer_digit_depends_only_on_its_neighbourhood():
    """Head 1 at an answer digit reads only tokens within layers x window block positions: digits redrawn beyond
    that leave its logits bit for bit the same (hexadd.verify.bands.locality, on an untrained model here)."""
    from hexadd.verify.bands import locality
    from hexadd.data.tokenizer import train_tokenizer
    model = window_model()
    loc = locality(model, train_tokenizer([]), n=8, length=48)
    assert loc["radius"] == 4 and loc["operand_digits_redrawn"] > 20
    assert loc["max_abs_logit_difference"] == 0.0 and loc["answers_changed"] == 0
    # The same redraw inside the neighbourhood does move them: the measurement can fail.
    dense = tiny(position_scheme="block", number_embedding=True, n_positions=64)
    assert locality(dense, train_tokenizer([]), n=8, length=48)["max_abs_logit_difference"] > 0


def test_head_j_learns_only_drafts_decoding_asks_for():
    """A windowed model's head 2 at the second operand's last digit would predict the answer's first digit:
    decoding never drafts from there, and a window cannot see it. Its targets start one answer token later than
    head 1's. A model attending to everything keeps every target."""
    from hexadd.modeling.model import head_targets
    labels = torch.tensor([[-100, -100, -100, -100, -100, 7, 8, 9, 2, -100]])   # `+A+B+` then `C+`, then padding
    assert head_targets(labels, 1, True).tolist() == [[-100, -100, -100, -100, 7, 8, 9, 2, -100]]
    assert head_targets(labels, 2, True).tolist() == [[-100, -100, -100, -100, 8, 9, 2, -100]]
    assert head_targets(labels, 3, True).tolist() == [[-100, -100, -100, -100, 9, 2, -100]]
    assert head_targets(labels, 2, False).tolist() == [[-100, -100, -100, 7, 8, 9, 2, -100]]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kw", [{}, {"position_scheme": "learned"}, {"position_scheme": "sinusoidal"},
                                {"number_embedding": True}, {"position_scheme": "block_relative", "window": 2},
                                {"position_scheme": "block_relative", "window": 2, "draft_head": "block", "n_predict": 2}])
def test_head1_logits_from_a_position_equal_the_full_pass(kw, attn):
    """The last block run only from `start` on (its earlier keys and values passed in) changes no logit there."""
    model = tiny(**kw)
    model.set_attn_implementation(attn)
    with torch.no_grad():
        x = torch.cat([ids("+1342+879+2221+"), torch.cat([ids("+12+3+15+"), torch.zeros(1, 6, dtype=torch.long)], 1)])
        mask = (torch.arange(15) < torch.tensor([[15], [9]])).long()
        full = model(x, attention_mask=mask).logits
        for start in (1, 5, 9, 14):
            part = model.head1_logits_from(x, mask, start)
            assert part.shape == (2, 15 - start, 19)
            real = mask[:, start:].bool()
            assert torch.allclose(part[real], full[:, start:][real], atol=1e-5), start
        assert torch.equal(model.head1_logits_from(x, mask, 0), full)
        one, ones = x[:1], torch.ones_like(x[:1])  # no padding: sdpa may get no mask at all, and must still be causal
        assert torch.allclose(model.head1_logits_from(one, ones, 6), model(one, attention_mask=ones).logits[:, 6:], atol=1e-5)


@pytest.mark.parametrize("kw", [{"position_scheme": "block_relative", "window": 2}, {}])
def test_a_draft_block_from_a_position_equals_its_full_pass(kw):
    """Decoding runs the last draft block's output only from the first slot a row reads (in a prompt's pass, its
    last); the slots before give only their keys and values. Its logits there, and every key and value it
    caches, are the full pass's."""
    import torch.nn.functional as F
    from transformers.cache_utils import Cache, StaticLayer
    from hexadd.inference.decoding import cache_layers
    from hexadd.modeling.positions import block_window
    model = tiny(draft_head="block", n_predict=2, **kw)
    model.set_attn_implementation("eager")
    x = ids("+1342+879+2221+")
    mask, T = torch.ones_like(x), x.shape[1]
    positions = model.position_ids(x, mask)
    window = block_window(positions, model.number_ids(x, mask), mask, 2) if model.config.windowed else None

    def draft_from(start):
        cache = Cache(layers=[StaticLayer(max_cache_len=T + 4) for _ in range(cache_layers(model, 2))])
        with torch.no_grad():
            out = model(x, attention_mask=mask, cache=cache, use_cache=True, heads=1)
            kwargs = model.draft_kwargs(out.state, mask, positions, x, cache, window, True)
            _, logits = model.draft(2, out.state, F.pad(x[:, 1:], (0, 1)), start=start, **kwargs)
        layer = cache.layers[model.config.n_layer]
        return logits, layer.keys[:, :, :T], layer.values[:, :, :T], int(layer.get_seq_length())

    full, keys, values, length = draft_from(0)
    assert full.shape == (1, T, 19) and length == T
    for start in (5, T - 1):
        logits, k, v, n = draft_from(start)
        assert logits.shape == (1, T - start, 19) and n == T
        assert torch.allclose(logits, full[:, start:], atol=1e-5), start
        assert torch.allclose(k, keys, atol=1e-6) and torch.allclose(v, values, atol=1e-6), start
