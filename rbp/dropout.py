"""Dropout with its mask drawn from uniform numbers on a CPU.

The same dropout as `torch.nn.Dropout` (each value kept with probability 1 - p and then scaled by
1 / (1 - p), zeroed otherwise), from torch's global generator like it, but drawn as `rand >= p`. On a
CPU torch draws its own mask with `bernoulli_`, which took 3 to 4 times as long as `rand` for the same
number of values here (`bench/bench_training.py` says what a training step spends): in the CNN it was
half of a training step, in DNABERT a fifth. Other devices keep torch's own fused dropout.

A transformers model's attention dropout is the same dropout on its attention weights, applied inside
SDPA: on a CPU SDPA then takes its plain path and draws the mask with `bernoulli_` too (about a fifth of
a small DNABERT's training step). `attention` is SDPA with that mask drawn the same way.

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


ATTENTION = "sdpa_cpu_dropout"  # the name transformers knows `attention` by


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
              **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention (its attention-interface signature), whose dropout on a CPU draws its
    mask as `Dropout` does: softmax(q·kᵀ · scaling + mask), dropped and scaled, times v. Without dropout
    (its layer passes 0 when evaluating), on other devices and for causal layers it is SDPA itself."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not (0 < dropout < 1 and query.device.type == "cpu") or getattr(module, "is_causal", False):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scores = torch.matmul(query, key.transpose(-2, -1)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:  # SDPA's: True where a key may be attended to, or added to the scores
        scores = (scores.masked_fill(~attention_mask, float("-inf")) if attention_mask.dtype == torch.bool
                  else scores + attention_mask)
    weights = torch.softmax(scores, dim=-1)
    weights = weights * kept(weights, dropout).mul_(1.0 / (1.0 - dropout))
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def _attention_on_cpu_fast(model: nn.Module) -> None:
    """A transformers model on SDPA switched to `attention`, registered under `ATTENTION`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return  # eager attention (attention maps) keeps its own
    AttentionInterface.register(ATTENTION, attention)  # again is the same: a name → function mapping
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # the masks SDPA takes
    model.set_attn_implementation(ATTENTION)


def draw_on_cpu_fast(model: nn.Module) -> nn.Module:
    """`model` with every `nn.Dropout` module in it made a `Dropout` (the same p; nothing in the state dict
    changes), and a transformers model's SDPA attention made `attention`. Other dropout that a library
    applies as a function inside a layer stays as it is."""
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = Dropout
    if hasattr(model, "set_attn_implementation"):
        _attention_on_cpu_fast(model)
    return model
