"""The metric registry: every test metric's key, column label, title and direction, in one place.

A fold logs each metric once as `test_<key>` (scikit-learn computes it): the binary ones score the
binding class (`test_f1`), the `_macro` ones average over both classes as DNABERT reports them
(`test_f1_macro`). A CV run logs `mean_test_<key>` and `std_test_<key>` over its folds, and every
table (cv, compare, sweep, notebooks, report) uses those names and the labels below.
`summarize_folds` is the one place where folds are aggregated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)


@dataclass(frozen=True)
class Metric:
    key: str  # "auc": logged per fold as test_auc, per CV run as mean_test_auc / std_test_auc
    label: str  # column label in tables: "ROC AUC"
    title: str  # what it measures, for figure titles and axes
    higher_is_better: bool
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], float]  # (labels, probabilities, calls)
    macro: bool = False  # averaged over both classes, as DNABERT reports it; False: of the binding class

    @property
    def test_key(self) -> str:
        return f"test_{self.key}"


METRICS: tuple[Metric, ...] = (
    Metric("auc", "ROC AUC", "test ROC AUC", True, lambda y, p, c: roc_auc_score(y, p)),
    Metric("auprc", "AUPRC", "test area under the precision-recall curve", True,
           lambda y, p, c: average_precision_score(y, p)),
    Metric("acc", "accuracy", "test accuracy", True, lambda y, p, c: accuracy_score(y, c)),
    Metric("f1", "F1", "test F1 score of the binding class", True,
           lambda y, p, c: f1_score(y, c, zero_division=0)),
    Metric("mcc", "MCC", "test Matthews correlation", True, lambda y, p, c: matthews_corrcoef(y, c)),
    Metric("precision", "precision", "test precision of the binding class", True,
           lambda y, p, c: precision_score(y, c, zero_division=0)),
    Metric("recall", "recall", "test recall of the binding class", True,
           lambda y, p, c: recall_score(y, c, zero_division=0)),
    # DNABERT's run_finetune.py reports these three as "f1", "precision" and "recall": macro averages.
    Metric("f1_macro", "macro F1", "test F1 score, macro average over both classes", True,
           lambda y, p, c: f1_score(y, c, average="macro", zero_division=0), macro=True),
    Metric("precision_macro", "macro precision", "test precision, macro average over both classes", True,
           lambda y, p, c: precision_score(y, c, average="macro", zero_division=0), macro=True),
    Metric("recall_macro", "macro recall", "test recall, macro average over both classes", True,
           lambda y, p, c: recall_score(y, c, average="macro", zero_division=0), macro=True),
)
BY_KEY = {m.key: m for m in METRICS}
TEST_METRICS = tuple(m.test_key for m in METRICS)
BINARY = tuple(m for m in METRICS if not m.macro)  # the summary tables' columns
# DNABERT's own figures (its dnaprom task): accuracy, macro F1, MCC, ROC AUC, AUPRC, macro precision and recall
DNABERT_STYLE = tuple(BY_KEY[key] for key in ("acc", "f1_macro", "mcc", "auc", "auprc", "precision_macro",
                                              "recall_macro"))


def metric(name: str) -> Metric:
    """The registry entry of `auc` or `test_auc`."""
    key = name.removeprefix("test_")
    if key not in BY_KEY:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(BY_KEY)}")
    return BY_KEY[key]


def binary_metrics(labels, probabilities, threshold: float = 0.5) -> dict[str, float]:
    """Every registered metric, keyed by its key; the thresholded ones call positive at `threshold`."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    calls = (probabilities >= threshold).astype(int)
    return {m.key: float(m.score(labels, probabilities, calls)) for m in METRICS}


def format_mean_std(mean: float, std: float | None, digits: int = 4) -> str:
    """'mean ± std' for a table; the mean alone where there is no spread (one fold, a reported figure)."""
    return f"{mean:.{digits}f}" + ("" if std is None or np.isnan(std) else f" ± {std:.{digits}f}")


def summarize_folds(rows: pd.DataFrame | Iterable[dict], keys: Iterable[str] = TEST_METRICS) -> dict[str, float]:
    """`mean_<key>` and `std_<key>` over folds (sample std, ddof=1; NaN for a single fold), missing
    values left out. The one aggregation every reader of fold results uses."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    out = {}
    for key in keys:
        values = frame[key].astype(float).dropna() if key in frame else pd.Series(dtype=float)
        out[f"mean_{key}"] = float(values.mean()) if len(values) else float("nan")
        out[f"std_{key}"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return out


def summary_columns() -> list[str]:
    return [f"{stat}_{key}" for key in TEST_METRICS for stat in ("mean", "std")]


def summary_table(fold_metrics_by_model: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per model: `n_folds` and `mean_test_*` / `std_test_*` of its fold metrics (one row per
    fold, columns test_auc, test_auprc, …)."""
    rows = [{"model": model, "n_folds": int(frame["test_auc"].notna().sum()), **summarize_folds(frame)}
            for model, frame in fold_metrics_by_model.items()]
    return pd.DataFrame(rows, columns=["model", "n_folds", *summary_columns()])


def format_summary(table: pd.DataFrame, digits: int = 4, metrics: Iterable[Metric] = BINARY) -> pd.DataFrame:
    """A summary table for reading: one `mean ± std` column per metric of `metrics` (the binary
    ones; `DNABERT_STYLE` for DNABERT's own), blank where nothing was reported; other columns but
    the mean/std ones are kept as they are."""
    def cell(mean, std):
        return "" if pd.isna(mean) else format_mean_std(mean, None if pd.isna(std) else std, digits)

    out = table.drop(columns=[c for c in summary_columns() if c in table]).copy()
    if "n_folds" in out:
        out["n_folds"] = out["n_folds"].map(lambda n: "" if pd.isna(n) else str(int(n)))
        out = out.rename(columns={"n_folds": "folds"})
    for m in metrics:
        out[m.label] = [cell(mean, std) for mean, std in
                        zip(table[f"mean_{m.test_key}"], table[f"std_{m.test_key}"], strict=True)]
    return out.set_index("model") if "model" in out else out
