"""Test-fold metrics (scikit-learn): threshold-free AUCs and thresholded classification scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

METRICS = ("auc", "auprc", "acc", "f1", "mcc", "precision", "recall")
TEST_METRICS = tuple(f"test_{m}" for m in METRICS)


def binary_metrics(labels, probabilities, threshold: float = 0.5) -> dict[str, float]:
    """ROC AUC, average precision (AUPRC), and accuracy, F1, MCC, precision, recall at `threshold`."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = (probabilities >= threshold).astype(int)
    return {
        "auc": float(roc_auc_score(labels, probabilities)),
        "auprc": float(average_precision_score(labels, probabilities)),
        "acc": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "mcc": float(matthews_corrcoef(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
    }


def format_mean_std(mean: float, std: float, digits: int = 4) -> str:
    """'mean ± std' for a table; the mean alone where there is no spread (one fold, a reported figure)."""
    return f"{mean:.{digits}f}" + ("" if std is None or np.isnan(std) else f" ± {std:.{digits}f}")


def mean_std(rows: list[dict[str, float]], keys=TEST_METRICS) -> dict[str, float]:
    """`mean_<key>` and `std_<key>` over folds (sample std, ddof=1; NaN for a single fold)."""
    out = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=float)
        out[f"mean_{key}"] = float(values.mean())
        out[f"std_{key}"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return out
