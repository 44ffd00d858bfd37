"""An exponential moving average of the weights: what the run evaluates, gates and saves when
`training.ema` is set.

The last errors of a nearly exact model come and go from one step to the next with the optimizer's
noise; an average over the last few hundred steps is a steadier model than any single step's
weights. torch's own AveragedModel keeps the average; this adds its place in a checkpoint.
"""
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

PREFIX = "ema."  # its tensors' names among a checkpoint's extra tensors


class WeightAverage:
    def __init__(self, model, decay: float):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.module = self.averaged.module
        self.module.eval()  # never trained itself; dropout off whenever it is evaluated

    def update(self, model) -> None:
        self.averaged.update_parameters(model)

    def tensors(self) -> dict:
        """Its weights and count, for a checkpoint; the tied output matrix once, as save_pretrained stores it."""
        weights = {k: v.detach().clone() for k, v in self.module.state_dict().items() if k != "lm_head.weight"}
        return {**{PREFIX + k: v for k, v in weights.items()}, PREFIX + "n_averaged": self.averaged.n_averaged.clone()}

    def load(self, tensors: dict) -> None:
        """Restore from a checkpoint's extra tensors (those under PREFIX)."""
        mine = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        self.averaged.n_averaged.copy_(mine.pop("n_averaged"))
        self.module.load_state_dict(mine, strict=False)
        self.module.tie_weights()

