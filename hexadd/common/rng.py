"""Every seed stream of the project in one place: which generator each sample is drawn from.

A run's samples are a function of (seed, stream, index), so a resumed or repeated run draws the same ones and
no two kinds of sample share draws. Seeds sit STRIDE apart and a stream is an offset from seed * STRIDE;
torch seeds its CPU generator from a seed's low 32 bits, so the trainer's streams sit 2^30 apart within
them, away from certification's index range (for seeds below a thousand).
"""
import random

STRIDE = 1_000_003

CERTIFY = 0              # the certificate's chunks (index: chunk); the length grid's cells (index: cell)
REPLAY = 1               # which replayed errors a batch takes (index: step)
BAND = 104_729           # length bands (index: band * 100 + family; -1 the locality probe)
FRESH = 1 << 30          # the fresh checks at each evaluation (index: step)
GATE = 2 << 30           # the stopping gate (index: step)
TRAIN = 3 << 30          # rows of training batches drawn anew (index: step)
TRAIN_KIND = 1 << 27     # ... each row kind a sub-stream this far from the previous one's
# The gate's error search draws which neighbours to try, not a sample to measure, so it may share the
# gate's quarter (halfway in, apart from it for seeds below about 500).
SEARCH = GATE + (1 << 29)
CELL = 7_919             # grid cell (i, j) is index i * CELL + j: distinct for lengths below CELL


def seed_of(seed: int, stream: int, index: int = 0) -> int:
    return (stream + seed * STRIDE + index) % 2**32


def generator(seed: int, stream: int, index: int = 0):
    """A torch.Generator for (seed, stream, index). torch is imported here: data_generator.py never needs it."""
    import torch
    return torch.Generator().manual_seed(seed_of(seed, stream, index))


def python_random(seed: int, stream: int, index: int = 0) -> random.Random:
    return random.Random(seed_of(seed, stream, index))


def epoch_order(seed: int, epoch: int):
    """The order of the training file's rows in an epoch (a torch.Generator)."""
    import torch
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def problem_sample(seed: int) -> random.Random:
    """data_generator.py's sample of problems."""
    return random.Random(seed)


def held_out_choice(seed: int) -> random.Random:
    """data_generator.py's choice of held-out problems."""
    return random.Random(seed + 1)
