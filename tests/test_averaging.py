import torch

from hexadd.train.averaging import WeightAverage
from hexadd.modeling.model import HexAddConfig, HexAddForCausalLM


def tiny_model(seed):
    torch.manual_seed(seed)
    return HexAddForCausalLM(HexAddConfig(vocab_size=20, n_embd=16, n_layer=1, n_head=2, n_positions=16))


def test_average_follows_the_decay_and_survives_a_checkpoint_round_trip():
    model = tiny_model(0)
    average = WeightAverage(model, decay=0.5)
    states = []
    for seed in (1, 2, 3):  # three "steps": new weights each time
        model.load_state_dict(tiny_model(seed).state_dict())
        average.update(model)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    name = "transformer.h.0.mlp.c_fc.weight"
    expected = 0.25 * states[0][name] + 0.25 * states[1][name] + 0.5 * states[2][name]  # first update copies
    assert torch.allclose(average.module.state_dict()[name], expected)
    assert average.module.lm_head.weight is average.module.transformer.wte.weight  # still tied

    restored = WeightAverage(tiny_model(9), decay=0.5)
    restored.load(average.tensors())
    for k, v in average.module.state_dict().items():
        assert torch.equal(restored.module.state_dict()[k], v), k
    assert restored.module.lm_head.weight is restored.module.transformer.wte.weight
    assert int(restored.averaged.n_averaged) == 3
