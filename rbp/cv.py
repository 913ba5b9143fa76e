"""K-fold cross-validation of one model family on the folds of a run (no tracking here).

For each fold: train on `train`, select the epoch on `dev`, then evaluate the test fold once with
the best-on-validation weights. Callbacks let a tracking layer log as the folds go.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from rbp.data import Folds
from rbp.metrics import METRICS, binary_metrics, mean_std
from rbp.params import TrainParams
from rbp.train import EpochLog, TrainResult, predict, seed_everything, train_model


@dataclass
class FoldResult:
    fold: int
    training: TrainResult
    metrics: dict[str, float]  # test_auc, test_auprc, ... on the test fold, once
    predictions: pd.DataFrame  # id, label, probability, fold
    model: torch.nn.Module  # with the best-on-validation weights
    seconds: float

    @property
    def best_epoch(self) -> int:
        return self.training.best_epoch


class Callbacks:
    """Hooks for a tracking layer; the defaults do nothing."""

    def fold_started(self, fold: int) -> None: ...

    def epoch_ended(self, fold: int, log: EpochLog) -> None: ...

    def fold_ended(self, result: FoldResult) -> None: ...


def _labels(frame: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(frame.label.to_numpy(), dtype=torch.long)


def run_fold(family, folds: Folds, fold: int, cfg: TrainParams, device: torch.device, seed: int,
             callbacks: Callbacks | None = None, progress: bool = True) -> FoldResult:
    callbacks = callbacks or Callbacks()
    callbacks.fold_started(fold)
    start = time.perf_counter()
    train, dev, test = (folds.split(fold, s) for s in ("train", "dev", "test"))
    seed_everything(seed)  # every fold starts from the same seed: same init, same batch order
    model = family.build()
    training = train_model(
        model, family.encode(train.sequence), _labels(train), family.encode(dev.sequence), _labels(dev),
        cfg, device, seed, on_epoch=lambda log: callbacks.epoch_ended(fold, log),
        name=f"{family.name} fold {fold}", progress=progress)
    probabilities = predict(model, family.encode(test.sequence), cfg.eval_batch_size, device)
    metrics = {f"test_{k}": v for k, v in binary_metrics(test.label, probabilities).items()}
    predictions = pd.DataFrame({"id": test.id, "label": test.label, "probability": probabilities,
                                "fold": fold})
    result = FoldResult(fold, training, metrics, predictions, model, time.perf_counter() - start)
    callbacks.fold_ended(result)
    return result


def cross_validate(family, folds: Folds, cfg: TrainParams, device: torch.device, seed: int,
                   callbacks: Callbacks | None = None, progress: bool = True) -> list[FoldResult]:
    return [run_fold(family, folds, fold, cfg, device, seed, callbacks, progress)
            for fold in folds.fold_numbers]


def fold_table(results: list[FoldResult]) -> pd.DataFrame:
    """One row per fold: fold, best epoch, seconds and the seven test metrics."""
    return pd.DataFrame([{"fold": r.fold, "best_epoch": r.best_epoch, "seconds": round(r.seconds, 1),
                          **r.metrics} for r in results])


def summary(results: list[FoldResult]) -> dict[str, float]:
    """`mean_test_*` and `std_test_*` over folds, and `n_folds`."""
    return {**mean_std([r.metrics for r in results]), "n_folds": len(results)}


def summary_table(results: list[FoldResult]) -> pd.DataFrame:
    """Per metric: mean, std and 'mean ± std' over folds, for a notebook."""
    s = summary(results)
    rows = [{"metric": m, "mean": s[f"mean_test_{m}"], "std": s[f"std_test_{m}"],
             "mean ± std": f"{s[f'mean_test_{m}']:.4f} ± {s[f'std_test_{m}']:.4f}"} for m in METRICS]
    return pd.DataFrame(rows)


def history_table(results: list[FoldResult]) -> pd.DataFrame:
    """Per fold and epoch: losses and validation AUC (for learning curves)."""
    return pd.DataFrame([{"fold": r.fold, **vars(log)} for r in results for log in r.training.history])


def pooled_predictions(results: list[FoldResult]) -> pd.DataFrame:
    return pd.concat([r.predictions for r in results], ignore_index=True)


def best_epochs(results: list[FoldResult]) -> np.ndarray:
    return np.array([r.best_epoch for r in results])
