"""What steers the training loop's steps: the optimiser (no weight decay on biases and normalisation
weights), the learning-rate schedule, and early stopping on the validation AUC."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rbp.train import TrainParams


class EarlyStopping:
    """Stop after `patience` epochs without a better score, but never before `min_epochs`."""

    def __init__(self, patience: int, min_epochs: int = 0):
        self.patience, self.min_epochs = patience, min_epochs
        self.best_epoch, self.best_score = 0, -math.inf

    def update(self, epoch: int, score: float) -> bool:
        """Record an epoch's score; True if it is the best so far (ties keep the earlier epoch)."""
        if score > self.best_score:
            self.best_epoch, self.best_score = epoch, score
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        return epoch >= self.min_epochs and epoch - self.best_epoch >= self.patience


def make_optimizer(model: torch.nn.Module, cfg: TrainParams) -> torch.optim.Optimizer:
    # Weight decay never applies to biases and normalisation weights (one-dimensional parameters).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kinds = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
             "sgd": torch.optim.SGD}
    return kinds[cfg.optimizer](groups, lr=cfg.lr)


def make_schedule(optimizer, cfg: TrainParams, total_steps: int):
    """Linear warm-up over `warmup_fraction` of the steps, then constant, linear or cosine decay."""
    warmup = int(cfg.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
