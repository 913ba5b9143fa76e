"""Dropout with its mask drawn from uniform numbers on a CPU.

The same dropout as `torch.nn.Dropout` (each value kept with probability 1 - p and then scaled by
1 / (1 - p), zeroed otherwise), from torch's global generator like it, but drawn as `rand >= p`. On a
CPU torch draws its own mask with `bernoulli_`, which took 3 to 4 times as long as `rand` for the same
number of values here (`bench/bench_training.py` says what a training step spends): in the CNN it was
half of a training step, in DNABERT a fifth. Other devices keep torch's own fused dropout.

A different draw from the same seed: models trained with it differ from those trained with
`nn.Dropout`'s draws as two seeds do, not more.
"""

from __future__ import annotations

import torch
from torch import nn


def kept(like: torch.Tensor, p: float) -> torch.Tensor:
    """A tensor shaped like `like`: 1.0 where a value is kept (probability 1 - p), 0.0 where dropped."""
    return torch.rand(like.shape, dtype=like.dtype, device=like.device).ge_(p)


class Dropout(nn.Dropout):
    """`nn.Dropout` whose mask is drawn from uniform numbers on a CPU (the module docstring says why)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or self.inplace or x.device.type != "cpu":
            return super().forward(x)
        return x * kept(x, self.p).mul_(1.0 / (1.0 - self.p))


def draw_on_cpu_fast(model: nn.Module) -> nn.Module:
    """`model` with every `nn.Dropout` module in it made a `Dropout` (the same p; nothing in the state dict
    changes). Dropout that a library applies as a function inside a layer stays as it is."""
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = Dropout
    return model
