"""A k-mer spectrum logistic regression: the baseline a reviewer asks for first.

Each sequence becomes the frequencies of its k-mers for every k in a range (counts divided by the
number of k-mers of that size it holds, so sequences of any length compare); scikit-learn fits an
L2-regularised logistic regression on standardised frequencies for each strength in a grid, and
the fold keeps the one with the best ROC AUC on its validation split. The test fold is never seen.

The fitted regression becomes a one-layer torch model (standardisation folded into the weights),
so predicting, registering, scanning and in-silico mutagenesis treat it as any other family's model.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from rbp.errors import RbpError
from rbp.families import load_checkpoint, save_checkpoint
from rbp.kmers import kmer_counts
from rbp.train import EpochLog, TrainResult

if TYPE_CHECKING:  # scikit-learn is imported where it is used: importing the settings (the params) stays light
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler


@dataclass
class KmerLRParams:
    """The `kmer_lr` section of the params: logistic regression on k-mer frequencies (scikit-learn); its
    regularisation is chosen on each fold's validation split. Not a neural model: the training loop's
    knobs do not apply."""

    k_min: int = 3
    k_max: int = 6
    c_grid: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0])  # inverse L2 strengths tried
    max_iter: int = 1000
    selection: Literal["validation"] = "validation"
    eval_batch_size: int = 1024

    def problems(self, name: str, params: Any = None) -> Iterator[str]:
        """What is wrong with these settings as the section `name` of a run's params, one message each."""
        if self.eval_batch_size < 1:
            yield f"{name}.eval_batch_size must be at least 1, got {self.eval_batch_size}"
        if not 1 <= self.k_min <= self.k_max <= 8:
            yield (f"{name}.k_min and {name}.k_max must satisfy 1 <= k_min <= k_max <= 8, "
                   f"got {self.k_min} and {self.k_max}")
        if not (self.c_grid and all(0 < c < math.inf for c in self.c_grid)):
            yield (f"{name}.c_grid must list positive inverse regularisation strengths, e.g. [0.01, 0.1, 1], "
                   f"got {self.c_grid}")
        if self.max_iter < 1:
            yield f"{name}.max_iter must be at least 1, got {self.max_iter}"


def kmer_spectrum(sequences, k_min: int, k_max: int) -> np.ndarray:
    """(N, sum of 4**k) k-mer frequencies for k = k_min..k_max, each k's block summing to 1 (0 for a
    sequence with no k-mer of that size)."""
    blocks = []
    for k in range(k_min, k_max + 1):
        counts = kmer_counts(sequences, k)
        totals = counts.sum(axis=1, keepdims=True)
        blocks.append(np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0))
    return np.concatenate(blocks, axis=1)


class SpectrumLogistic(nn.Module):
    """logit = spectrum · weight + bias: a fitted logistic regression, applied by torch."""

    def __init__(self, n_features: int):
        super().__init__()
        self.config = {"n_features": n_features}
        self.linear = nn.Linear(n_features, 1)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        return self.linear(spectrum).squeeze(-1)


def to_torch(scaler: StandardScaler, regression: LogisticRegression) -> SpectrumLogistic:
    """The regression on standardised features as one linear layer on raw frequencies."""
    coef = regression.coef_[0] / scaler.scale_
    model = SpectrumLogistic(len(coef))
    with torch.no_grad():
        model.linear.weight.copy_(torch.from_numpy(coef[None, :]).float())
        model.linear.bias.fill_(float(regression.intercept_[0] - (coef * scaler.mean_).sum()))
    return model.eval()


class KmerLRFamily:
    """Fits the regression on each fold (`fit`, instead of the training loop)."""

    name = "kmer_lr"
    amp = False

    def __init__(self, params: KmerLRParams, k: int):
        self.params = params
        self.k = params.k_min  # the shortest k-mer it counts
        self.kmer_sizes = tuple(range(params.k_min, params.k_max + 1))  # every size it counts

    def encode(self, sequences) -> dict[str, torch.Tensor]:
        spectrum = kmer_spectrum(list(sequences), self.params.k_min, self.params.k_max)
        return {"spectrum": torch.from_numpy(spectrum)}

    def fit(self, fold: int, train: dict, train_labels: torch.Tensor, dev: dict, dev_labels: torch.Tensor,
            device: torch.device, seed: int) -> tuple[SpectrumLogistic, TrainResult]:
        """One regression per strength in `c_grid` on `train`; the one with the best validation ROC AUC
        (ties: the stronger regularisation) is kept. Nothing else is looked at."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss, roc_auc_score
        from sklearn.preprocessing import StandardScaler

        start = time.perf_counter()
        x, y = train["spectrum"].numpy(), train_labels.numpy()
        x_dev, y_dev = dev["spectrum"].numpy(), dev_labels.numpy()
        scaler = StandardScaler().fit(x)
        scaler.scale_[scaler.scale_ == 0] = 1.0  # a k-mer absent from the training part stays 0
        x, x_dev = scaler.transform(x), scaler.transform(x_dev)
        best = None
        for c in sorted(self.params.c_grid):
            regression = LogisticRegression(C=c, max_iter=self.params.max_iter, random_state=seed)
            with warnings.catch_warnings():  # a strength that needs more iterations is still compared
                warnings.simplefilter("ignore", ConvergenceWarning)
                regression.fit(x, y)
            auc = float(roc_auc_score(y_dev, regression.decision_function(x_dev)))
            if best is None or auc > best[0]:
                best = (auc, c, regression)
        auc, c, regression = best
        log = EpochLog(epoch=1, train_loss=float(log_loss(y, regression.predict_proba(x)[:, 1], labels=[0, 1])),
                       val_loss=float(log_loss(y_dev, regression.predict_proba(x_dev)[:, 1], labels=[0, 1])),
                       val_auc=auc, lr=math.nan, seconds=time.perf_counter() - start)
        result = TrainResult(best_epoch=1, best_val_auc=auc, history=[log], selected={"C": c})
        return to_torch(scaler, regression).to(device), result

    def embeddings(self, model: SpectrumLogistic) -> nn.Module:
        raise RbpError("the k-mer LR reads k-mer frequencies, not token embeddings: Integrated Gradients "
                       "does not apply to it; use ism")

    def tags(self) -> dict[str, str]:
        return {}

    def describe(self) -> str:
        p = self.params
        ks = f"{p.k_min}" if p.k_min == p.k_max else f"{p.k_min} to {p.k_max}"
        return (f"Logistic regression (scikit-learn, L2) on the frequencies of k-mers of {ks} nt, standardised; "
                f"its inverse regularisation strength C is chosen per fold on the validation split from "
                f"{', '.join(f'{c:g}' for c in sorted(p.c_grid))}.")

    def save(self, model: SpectrumLogistic, directory: str | Path) -> Path:
        """The weights plus what rebuilds the model: `load` reads it back."""
        return save_checkpoint(self, model, directory)

    def load(self, directory: str | Path) -> SpectrumLogistic:
        """A model saved by `save` (the folder, or its model.pt), in eval mode on the CPU."""
        model, saved, path = load_checkpoint(self, directory, SpectrumLogistic)
        expected = sum(4**k for k in range(self.params.k_min, self.params.k_max + 1))
        if saved["config"]["n_features"] != expected:
            raise RbpError(f"{path}: {saved['config']['n_features']} k-mer features, but k = {self.params.k_min}"
                           f" to {self.params.k_max} gives {expected}")
        return model
