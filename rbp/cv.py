"""K-fold cross-validation of one model family on the folds of a run (no tracking here).

For each fold: train on `train`, select the epoch on `dev`, then evaluate the test fold once with
the best-on-validation weights. A fitted family (the k-mer regression, the ensemble) makes the
fold's model itself from `train`, choosing on `dev` alone. With `selection: final` (DNABERT's own
protocol) a fold trains on `train` and `dev` together and its final epoch is evaluated. Callbacks
let a tracking layer log as the folds go.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import pandas as pd
import torch

from rbp.data import Folds
from rbp.errors import RbpError
from rbp.families import FittedFamily, ModelFamily
from rbp.metrics import TEST_METRICS, binary_metrics, summarize_folds
from rbp.train import EpochLog, TrainParams, TrainResult, predict, seed_everything, train_model


@dataclass
class FoldResult:
    fold: int
    training: TrainResult
    metrics: dict[str, float]  # test_auc, test_auprc, ... on the test fold, once
    predictions: pd.DataFrame  # id, label, probability, fold
    model: torch.nn.Module  # with the best-on-validation weights
    seconds: float
    val_predictions: pd.DataFrame | None = None  # the same for the validation split (`dev`)
    threshold: float = 0.5  # where the thresholded test metrics call a site: chosen on `dev` (Youden's J)

    @property
    def best_epoch(self) -> int:
        return self.training.best_epoch

    @property
    def warning(self) -> str | None:
        return divergence(self.training, self.fold)


def divergence(training: TrainResult, fold: int) -> str | None:
    """A warning when training ran away: the training loss ended ten times above where it started, or
    went past 100 (a cross-entropy that high means the weights exploded). None when it looks sane."""
    losses = [log.train_loss for log in training.history]
    if len(losses) < 2 or (losses[-1] <= 10 * losses[0] and max(losses) <= 100):
        return None
    return (f"fold {fold}: training diverged (training loss {losses[0]:.3g} in epoch 1, {losses[-1]:.3g} in epoch "
            f"{len(losses)}; best validation AUC {training.best_val_auc:.3f}); lower the learning rate or turn "
            "on grad_clip")


class Callbacks:
    """Hooks for a tracking layer; the defaults do nothing."""

    def fold_started(self, fold: int) -> None: ...

    def epoch_ended(self, fold: int, log: EpochLog) -> None: ...

    def fold_ended(self, result: FoldResult) -> None: ...


class CallbackList(Callbacks):
    """Several callbacks in turn (e.g. MLflow logging and a progress file)."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def fold_started(self, fold: int) -> None:
        for c in self.callbacks:
            c.fold_started(fold)

    def epoch_ended(self, fold: int, log: EpochLog) -> None:
        for c in self.callbacks:
            c.epoch_ended(fold, log)

    def fold_ended(self, result: FoldResult) -> None:
        for c in self.callbacks:
            c.fold_ended(result)


def _callbacks(callbacks) -> Callbacks:
    if callbacks is None:
        return Callbacks()
    return CallbackList(callbacks) if isinstance(callbacks, list | tuple) else callbacks


def run_fold(family: ModelFamily, folds: Folds, fold: int, cfg: TrainParams, device: torch.device, seed: int,
             callbacks: Callbacks | None = None, progress: bool = True,
             encoded: dict[str, torch.Tensor] | None = None) -> FoldResult:
    """Train, select the epoch on `dev`, evaluate the test fold once. `encoded`: the family's
    tensors for all of `folds.sequences` (made here when not given)."""
    callbacks = _callbacks(callbacks)
    callbacks.fold_started(fold)
    start = time.perf_counter()
    if encoded is None:
        encoded = family.encode(folds.sequences.sequence)
    labels = torch.tensor(folds.sequences.label.to_numpy(), dtype=torch.long)
    rows = {s: torch.from_numpy(folds.positions(fold, s)) for s in ("train", "dev", "test")}
    select = cfg.selection == "validation"
    if not select:  # DNABERT's own protocol: the whole training part, no validation split
        rows["train"] = torch.sort(torch.cat([rows.pop("train"), rows.pop("dev")])).values
    inputs = {s: {key: value[index] for key, value in encoded.items()} for s, index in rows.items()}
    seed_everything(seed)  # every fold starts from the same seed: same init, same batch order
    if isinstance(family, FittedFamily):  # not trained by the loop (the k-mer LR, the ensemble): fitted, chosen on dev
        model, training = family.fit(fold, inputs["train"], labels[rows["train"]], inputs["dev"],
                                     labels[rows["dev"]], device, seed)
        for log in training.history:
            callbacks.epoch_ended(fold, log)
    else:
        model = family.build()
        training = train_model(
            model, inputs["train"], labels[rows["train"]], inputs.get("dev"), labels[rows["dev"]] if select else None,
            cfg, device, seed, on_epoch=lambda log: callbacks.epoch_ended(fold, log),
            name=f"{family.name} fold {fold}", progress=progress, amp=family.amp)
    probabilities = predict(model, inputs["test"], cfg.eval_batch_size, device)
    validation = None
    if select:  # for a decision threshold
        scored = training.validation  # a fitted family may have scored the split already
        validation = _predictions(folds.sequences.iloc[rows["dev"].numpy()],
                                  predict(model, inputs["dev"], cfg.eval_batch_size, device) if scored is None
                                  else scored, fold)
    model.cpu()  # K fold models must not pile up on the GPU
    test = folds.sequences.iloc[rows["test"].numpy()]
    threshold = fold_threshold(validation)
    metrics = {f"test_{k}": v for k, v in binary_metrics(test.label, probabilities, threshold).items()}
    result = FoldResult(fold, training, metrics, _predictions(test, probabilities, fold), model,
                        time.perf_counter() - start, validation, threshold)
    if result.warning:
        warnings.warn(result.warning, RuntimeWarning, stacklevel=2)
    callbacks.fold_ended(result)
    return result


def fold_threshold(validation: pd.DataFrame | None) -> float:
    """Where a fold's thresholded test metrics (accuracy, F1, MCC, precision, recall) call a site: the
    cut chosen on its validation predictions by Youden's J, as `rbp predict` calls; 0.5 for a model
    trained without a validation split (or one whose split holds one class)."""
    from rbp.fold_ensemble import choose_threshold

    if validation is None or validation.label.nunique() < 2:
        return 0.5
    return choose_threshold(validation.label, validation.probability)


def describe_selection(cfg: TrainParams) -> str:
    """One Markdown sentence for a notebook: how each fold's model was chosen."""
    if cfg.selection == "final":
        return ("**Parity protocol (no selection):** each fold trains on its whole training part (no validation "
                f"split) for {cfg.max_epochs} epochs and its final epoch is evaluated"
                + ("" if cfg.amp else ", in fp32") + ", as DNABERT's own fine-tuning does.")
    return ("Each fold picks its epoch on its validation split (`dev`) and is evaluated once on its test fold "
            "with those weights.")


def _predictions(table: pd.DataFrame, probabilities, fold: int) -> pd.DataFrame:
    return pd.DataFrame({"id": table.id.to_numpy(), "label": table.label.to_numpy(),
                         "probability": probabilities, "fold": fold})


def cross_validate(family: ModelFamily, folds: Folds, cfg: TrainParams, device: torch.device, seed: int,
                   callbacks: Callbacks | list[Callbacks] | None = None, progress: bool = True,
                   only: list[int] | None = None, kept: list[FoldResult] = ()) -> list[FoldResult]:
    """Run the folds in `only` (default: every fold) and return their results with those in `kept`
    (folds a resumed run had finished), in fold order. Each fold is seeded alike, so a fold run alone
    trains as it would among the others."""
    callbacks = _callbacks(callbacks)
    todo = list(folds.fold_numbers if only is None else only)
    unknown = [fold for fold in todo if fold not in folds.fold_numbers]
    if unknown:  # a fold these folds do not hold would train on nothing
        raise RbpError(f"only: fold {', '.join(map(str, unknown))} is not a fold of {folds.dir} "
                       f"(its folds: {', '.join(map(str, folds.fold_numbers))})")
    encoded = family.encode(folds.sequences.sequence) if todo else None  # once: every fold slices the same tensors
    results = list(kept) + [run_fold(family, folds, fold, cfg, device, seed, callbacks, progress, encoded)
                            for fold in todo]
    return sorted(results, key=lambda r: r.fold)


def fold_table(results: list[FoldResult]) -> pd.DataFrame:
    """One row per fold: fold, best epoch and its validation AUC, seconds and the seven test metrics."""
    return pd.DataFrame([{"fold": r.fold, "best_epoch": r.best_epoch, "best_val_auc": r.training.best_val_auc,
                          "seconds": round(r.seconds, 1), **r.metrics} for r in results])


def summary(results: list[FoldResult]) -> dict[str, float]:
    """`mean_test_*` and `std_test_*` over folds, `mean_best_val_auc` and `std_best_val_auc` (the
    figure to compare training recipes on: it never looks at a test fold), and `n_folds`."""
    return {**summarize_folds(fold_table(results), (*TEST_METRICS, "best_val_auc")), "n_folds": len(results)}


def history_table(results: list[FoldResult]) -> pd.DataFrame:
    """Per fold and epoch: losses and validation AUC (for learning curves)."""
    return pd.DataFrame([{"fold": r.fold, **vars(log)} for r in results for log in r.training.history])


def pooled_predictions(results: list[FoldResult]) -> pd.DataFrame:
    return pd.concat([r.predictions for r in results], ignore_index=True)
