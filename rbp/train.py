"""The one training loop every model uses.

Batches are sliced from pre-built tensors; each epoch ends with a validation pass (loss and ROC
AUC); early stopping watches the validation AUC, and the best-on-validation weights are restored at
the end. With `ema_decay` set, an exponential moving average of the weights is what gets validated,
kept and restored: it smooths the step-to-step noise that makes a small validation split pick a
lucky epoch. With `mask_fraction` set, that share of the k-mer tokens of every training batch is
replaced by `[MASK]` (validation and test see whole sequences).

The test fold is never seen here: callers evaluate it once, with `predict`, afterwards.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from rbp.errors import RbpError
from rbp.kmers import mask_kmers
from rbp.optim import EarlyStopping, make_optimizer, make_schedule


@dataclass
class TrainParams:
    """The training loop's knobs, the same for every model; a neural family's params section subclasses
    it, so these keys and their checks apply to it."""

    max_epochs: int = 50
    min_epochs: int = 0  # early stopping never ends a fold before this many epochs
    patience: int = 5  # epochs without a better validation AUC before stopping
    batch_size: int = 32
    eval_batch_size: int = 256
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "rmsprop"
    lr: float = 2e-4
    weight_decay: float = 0.0  # never applied to biases and LayerNorm weights
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_fraction: float = 0.0  # share of all steps spent warming the learning rate up
    grad_clip: float | None = None  # max gradient norm; null = no clipping
    ema_decay: float | None = None  # validate and keep an exponential moving average of the weights; null = off
    mask_fraction: float = 0.0  # share of k-mer tokens replaced by [MASK] in each training batch
    # validation: choose the epoch on a validation split (`val_fraction`) | final: train on the whole
    # training part and keep the last epoch, no selection (DNABERT's own protocol: params/dnabert_parity.yaml)
    selection: Literal["validation", "final"] = "validation"
    amp: bool = True  # bf16 autocast on CUDA for families that use it (DNABERT); false: fp32 throughout

    def problems(self, name: str, params: Any = None) -> Iterator[str]:
        """What is wrong with these knobs as the section `name` of a run's params, one message each."""
        if self.eval_batch_size < 1:
            yield f"{name}.eval_batch_size must be at least 1, got {self.eval_batch_size}"
        if self.max_epochs < 1:
            yield f"{name}.max_epochs must be at least 1"
        if not 0 <= self.min_epochs <= self.max_epochs:
            yield f"{name}.min_epochs must lie between 0 and max_epochs"
        if self.patience < 1:
            yield f"{name}.patience must be at least 1"
        if self.batch_size < 1:
            yield f"{name}.batch_size must be at least 1, got {self.batch_size}"
        if not 0 < self.lr < math.inf:
            yield f"{name}.lr must be a positive finite number, got {self.lr}"
        if not 0 <= self.weight_decay < math.inf:
            yield f"{name}.weight_decay must be 0 or more, got {self.weight_decay}"
        if not (self.grad_clip is None or 0 < self.grad_clip < math.inf):
            yield f"{name}.grad_clip must be positive, or null for none; got {self.grad_clip}"
        if not 0 <= self.warmup_fraction < 1:
            yield f"{name}.warmup_fraction must lie in [0, 1)"
        if not 0 <= self.mask_fraction < 1:
            yield f"{name}.mask_fraction must lie in [0, 1), got {self.mask_fraction}"
        if not (self.ema_decay is None or 0 < self.ema_decay < 1):
            yield f"{name}.ema_decay must lie between 0 and 1 (e.g. 0.998), or be null for none; got {self.ema_decay}"


class TrainingError(RbpError):
    """Training that cannot go on (a NaN or infinite loss); the message names fold and epoch."""


@dataclass
class EpochLog:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_auc: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    best_epoch: int
    best_val_auc: float
    history: list[EpochLog] = field(default_factory=list)
    stopped_early: bool = False
    selected: dict[str, float] = field(default_factory=dict)  # what a fitted family chose on validation (C)
    # the kept model's probabilities on the validation split, where fitting it scored them as `predict` does
    # (the ensemble): the CV loop takes them instead of scoring the split again
    validation: np.ndarray | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RbpError("device: cuda was asked for, but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def logits_of(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits of a batch. Evaluated on a CPU without gradients, a model that says how many
    tokens a pass should hold (`cpu_pass_tokens`: DNABERT, whose activations outgrow the caches in big
    passes) runs in passes of at most that many, wherever it is called (alone, or inside an ensemble)."""
    ids = batch.get("input_ids")
    tokens = getattr(model, "cpu_pass_tokens", None)
    if tokens and ids is not None and ids.device.type == "cpu" and not torch.is_grad_enabled():
        rows = max(1, tokens // max(1, ids.shape[1]))
        if len(ids) > rows:
            return torch.cat([_logits(model, _slice(batch, slice(start, start + rows)))
                              for start in range(0, len(ids), rows)])
    return _logits(model, batch)


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(**batch)
    return out.logits if hasattr(out, "logits") else out


def loss_of(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Two-column logits: softmax cross-entropy (DNABERT); one column: sigmoid (LSTM)."""
    logits = logits.float()
    if logits.ndim == 2 and logits.shape[1] == 2:
        return F.cross_entropy(logits, labels.long())
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), labels.float())


def binding_logit(logits: torch.Tensor) -> torch.Tensor:
    """The logit of the binding class: one column as it is, two columns as their difference."""
    if logits.ndim == 2 and logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    return logits.reshape(-1)


def probability_of(logits: torch.Tensor) -> torch.Tensor:
    """P(class 1): softmax for two-column logits, sigmoid for one."""
    logits = logits.float()
    if logits.ndim == 2 and logits.shape[1] == 2:
        return logits.softmax(dim=1)[:, 1]
    return torch.sigmoid(logits.reshape(-1))


def watched(*modules: torch.nn.Module) -> bool:
    """Whether a forward hook would see these modules run (their own hooks, or any module's): an
    evaluation path that skips them (the CNN's tables, the LSTM's steps) must not run then."""
    from torch.nn.modules import module as hooks

    return bool(hooks._global_forward_hooks or hooks._global_forward_pre_hooks) or \
        any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def derived(module: torch.nn.Module, tensors, make):
    """`make()`, which `module` derives from `tensors` (its weights), kept on the module until one of
    them changes in place or is replaced (moved, loaded)."""
    key = tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in tensors if t is not None)
    cached = module.__dict__.get("_derived")
    if cached is None or cached[0] != key:
        module.__dict__["_derived"] = cached = (key, make())
    return cached[1]


def _autocast(device: torch.device, amp: bool):
    # bf16 on CUDA (no loss scaling needed); full precision on CPU, where it is the faster path here.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def _to(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in tensors.items()}


def _slice(tensors: dict[str, torch.Tensor], index) -> dict[str, torch.Tensor]:
    return {key: value[index] for key, value in tensors.items()}


@torch.no_grad()
def predict(model, inputs: dict[str, torch.Tensor], batch_size: int = 256,
            device: torch.device | None = None, labels: torch.Tensor | None = None, logits: bool = False):
    """Probabilities of class 1 (numpy; with `logits`, its logit instead, which does not saturate
    for confident sequences), and the mean loss when `labels` are given.

    Always in full precision: epochs are chosen and test metrics computed on these scores, and
    bf16 rounding would create ties between them."""
    device = device or next(model.parameters()).device
    model.eval()
    inputs = _to(inputs, device)
    n = len(next(iter(inputs.values())))
    probs, loss_sum = [], 0.0
    for start in range(0, n, batch_size):
        batch = _slice(inputs, slice(start, start + batch_size))
        out = logits_of(model, batch)
        probs.append((binding_logit(out).float() if logits else probability_of(out)).cpu())
        if labels is not None:
            loss_sum += float(loss_of(out, labels[start:start + batch_size].to(device))) * len(out)
    probabilities = torch.cat(probs).numpy() if probs else np.zeros(0)
    return (probabilities, loss_sum / n) if labels is not None else probabilities


def train_model(model: torch.nn.Module, train: dict[str, torch.Tensor], train_labels: torch.Tensor,
                dev: dict[str, torch.Tensor] | None, dev_labels: torch.Tensor | None, cfg: TrainParams,
                device: torch.device, seed: int,
                on_epoch: Callable[[EpochLog], None] | None = None, name: str = "training",
                progress: bool = True, amp: bool = True) -> TrainResult:
    """Train on `train`, validate on `dev` every epoch, keep and restore the best-on-validation weights.

    With no `dev` (`selection: final`, DNABERT's own protocol) there is no validation and no early
    stopping: all `max_epochs` run and the final weights are kept; the logs' validation figures are NaN.
    `amp`: bf16 autocast for the training steps on CUDA (ignored on the CPU, and when `cfg.amp` is off)."""
    from sklearn.metrics import roc_auc_score  # here: importing the loop's knobs (the params) stays light

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp = amp and cfg.amp
    model.to(device)
    train = _to(train, device)
    train_labels = train_labels.to(device)
    if dev is None:
        return _train_to_the_end(model, train, train_labels, cfg, device, seed, on_epoch, name, progress, amp)
    dev, dev_labels = _to(dev, device), dev_labels.to(device)
    state = _setup(model, cfg, len(train_labels), device, seed)
    stopper = EarlyStopping(cfg.patience, cfg.min_epochs)
    result = TrainResult(best_epoch=0, best_val_auc=-math.inf)
    best_state = None
    # The model that is validated and kept: the trained one, or the moving average of its weights.
    kept = state.ema.module if state.ema is not None else model
    dev_labels_np = dev_labels.cpu().numpy()

    bar = tqdm(range(1, cfg.max_epochs + 1), desc=name, unit="epoch", disable=not progress,
               mininterval=1.0, leave=True)
    for epoch in bar:
        start = time.perf_counter()
        train_loss = _epoch(model, train, train_labels, cfg, device, state, amp,
                            f"{name}: the training loss became {{}} in epoch {epoch}")
        dev_probs, val_loss = predict(kept, dev, cfg.eval_batch_size, device, dev_labels)
        if not np.isfinite(dev_probs).all():
            raise TrainingError(f"{name}: validation predictions are not finite in epoch {epoch}")
        log = EpochLog(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                       val_auc=float(roc_auc_score(dev_labels_np, dev_probs)),
                       lr=state.optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - start)
        result.history.append(log)
        if on_epoch:
            on_epoch(log)
        if stopper.update(epoch, log.val_auc):
            best_state = {k: v.detach().clone() for k, v in kept.state_dict().items()}
        bar.set_postfix(loss=f"{log.train_loss:.3f}", val_auc=f"{log.val_auc:.4f}",
                        best=stopper.best_epoch)
        if stopper.should_stop(epoch):
            result.stopped_early = epoch < cfg.max_epochs
            break
    bar.close()
    model.load_state_dict(best_state)
    result.best_epoch, result.best_val_auc = stopper.best_epoch, stopper.best_score
    return result


@dataclass
class TrainingState:
    """What a training run carries from one epoch to the next."""

    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler  # the learning rate over all steps of all epochs
    order: torch.Generator  # seeded: the batch order of each epoch
    masks: torch.Generator  # seeded: the tokens `mask_fraction` masks
    ema: AveragedModel | None  # the moving average of the weights (with `ema_decay`)


def _setup(model, cfg: TrainParams, n: int, device, seed: int) -> TrainingState:
    """A fresh training state for `n` training rows."""
    optimizer = make_optimizer(model, cfg)
    return TrainingState(
        optimizer=optimizer,
        schedule=make_schedule(optimizer, cfg, math.ceil(n / cfg.batch_size) * cfg.max_epochs),
        order=torch.Generator().manual_seed(seed),
        masks=torch.Generator(device=device).manual_seed(seed + 1),
        ema=(AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
             if cfg.ema_decay else None))


def _epoch(model, train, train_labels, cfg: TrainParams, device, state: TrainingState, amp: bool,
           diverged: str) -> float:
    """One pass over the training rows in a seeded random order; the mean training loss."""
    n = len(train_labels)
    model.train()
    permutation = torch.randperm(n, generator=state.order).to(device)
    loss_sum = torch.zeros((), device=device)
    for first in range(0, n, cfg.batch_size):
        index = permutation[first:first + cfg.batch_size]
        batch = _slice(train, index)
        if cfg.mask_fraction:
            batch["input_ids"] = mask_kmers(batch["input_ids"], cfg.mask_fraction, state.masks)
        with _autocast(device, amp):
            logits = logits_of(model, batch)
        loss = loss_of(logits, train_labels[index])
        if not torch.isfinite(loss):
            raise TrainingError(diverged.format(loss.item()) + "; lower the learning rate or turn on grad_clip")
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        state.optimizer.step()
        state.schedule.step()
        if state.ema is not None:
            state.ema.update_parameters(model)
        loss_sum += loss.detach() * len(index)
    return float(loss_sum) / n


def _train_to_the_end(model, train, train_labels, cfg: TrainParams, device, seed: int, on_epoch, name: str,
                      progress: bool, amp: bool) -> TrainResult:
    """`selection: final`: every epoch on all training rows, no validation; the final weights (or
    their moving average, with `ema_decay`) are the model."""
    state = _setup(model, cfg, len(train_labels), device, seed)
    result = TrainResult(best_epoch=cfg.max_epochs, best_val_auc=math.nan)
    for epoch in tqdm(range(1, cfg.max_epochs + 1), desc=name, unit="epoch", disable=not progress,
                      mininterval=1.0, leave=True):
        start = time.perf_counter()
        train_loss = _epoch(model, train, train_labels, cfg, device, state, amp,
                            f"{name}: the training loss became {{}} in epoch {epoch}")
        log = EpochLog(epoch=epoch, train_loss=train_loss, val_loss=math.nan, val_auc=math.nan,
                       lr=state.optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - start)
        result.history.append(log)
        if on_epoch:
            on_epoch(log)
    if state.ema is not None:
        model.load_state_dict(state.ema.module.state_dict())
    return result
