"""Paired statistics for comparing two models (pure functions on DataFrames; no MLflow).

Over folds: a paired t-test and a Wilcoxon signed-rank test of the per-fold differences. Over
sequences: a confidence interval and p-value for the difference of two pooled out-of-fold ROC AUCs,
by DeLong's test for correlated AUCs or by a stratified bootstrap. Several models compared against
one make several tests: `holm` adjusts their p-values for it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rbp.errors import RbpError


@dataclass
class PairedTest:
    """`metric` of model a minus model b on the folds they share; n is the number of those folds."""

    model_a: str
    model_b: str
    metric: str
    n_folds: int
    differences: pd.DataFrame  # fold, a, b, difference
    mean_difference: float
    std_difference: float
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float
    note: str = ""

    def as_row(self) -> dict:
        return {column: getattr(self, column) for column in TEST_COLUMNS}


TEST_COLUMNS = ["model_a", "model_b", "metric", "n_folds", "mean_difference", "std_difference",
                "t_statistic", "t_pvalue", "wilcoxon_statistic", "wilcoxon_pvalue", "note"]


def _folds_sha(frame: pd.DataFrame) -> str | None:
    values = set(frame["folds_sha256"].dropna()) if "folds_sha256" in frame else set()
    return next(iter(values)) if len(values) == 1 else None


def paired_tests(fold_metrics_a: pd.DataFrame, fold_metrics_b: pd.DataFrame, metric: str = "test_auc",
                 names: tuple[str, str] = ("a", "b")) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of a − b over the folds both models ran.

    Refuses (RbpError) when the two were cross-validated on different folds (folds_sha256 differs)
    or share no fold: then the folds are not paired and a paired test means nothing.
    """
    sha_a, sha_b = _folds_sha(fold_metrics_a), _folds_sha(fold_metrics_b)
    if sha_a and sha_b and sha_a != sha_b:
        raise RbpError(f"{names[0]} and {names[1]} were cross-validated on different folds "
                       f"(folds_sha256 {sha_a[:12]} vs {sha_b[:12]}): no paired comparison")
    merged = pd.merge(fold_metrics_a[["fold", metric]], fold_metrics_b[["fold", metric]], on="fold",
                      suffixes=("_a", "_b")).dropna().sort_values("fold", ignore_index=True)
    if merged.empty:
        raise RbpError(f"{names[0]} and {names[1]} share no fold with {metric}: no paired comparison")
    a, b = merged[f"{metric}_a"].to_numpy(float), merged[f"{metric}_b"].to_numpy(float)
    differences = pd.DataFrame({"fold": merged["fold"], "a": a, "b": b, "difference": a - b})
    n = len(differences)
    notes = []
    t_stat = t_p = w_stat = w_p = math.nan
    if n < 2:
        notes.append(f"only {n} shared fold: no paired test across folds")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # identical differences: t is undefined
            t_stat, t_p = (float(x) for x in stats.ttest_rel(a, b))
        if np.all(a == b):
            notes.append("the two models score the same on every fold: no Wilcoxon test")
        else:
            w_stat, w_p = (float(x) for x in stats.wilcoxon(a, b))
            if n <= 6:
                notes.append(f"with n = {n} folds the smallest possible two-sided Wilcoxon p is "
                             f"{2 / 2 ** n:.4g}")
    return PairedTest(names[0], names[1], metric, n, differences, float(np.mean(a - b)),
                      float(np.std(a - b, ddof=1)) if n > 1 else math.nan, t_stat, t_p, w_stat, w_p,
                      "; ".join(notes))


@dataclass
class AucDifference:
    """Pooled out-of-fold ROC AUC of model a minus model b, paired on sequence id."""

    model_a: str
    model_b: str
    method: str
    n: int
    n_positives: int
    n_negatives: int
    auc_a: float
    auc_b: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float

    def as_row(self) -> dict:
        return dataclasses.asdict(self)


AUC_COLUMNS = [f.name for f in dataclasses.fields(AucDifference)]


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `scores` (Mann-Whitney U over midranks, so ties count one half)."""
    positive = labels == 1
    m, n = positive.sum(), (~positive).sum()
    ranks = stats.rankdata(scores, method="average", axis=-1)
    return (ranks[..., positive].sum(axis=-1) - m * (m + 1) / 2) / (m * n)


def delong_components(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong's structural components (Sun & Xu 2014, via midranks) for k score rows over one sample.

    Returns the AUCs (k,), V10 (k × positives) and V01 (k × negatives).
    """
    scores = np.atleast_2d(scores)
    positive = labels == 1
    m, n = positive.sum(), (~positive).sum()
    all_ranks = stats.rankdata(scores, method="average", axis=-1)
    pos_ranks = stats.rankdata(scores[:, positive], method="average", axis=-1)
    neg_ranks = stats.rankdata(scores[:, ~positive], method="average", axis=-1)
    v10 = (all_ranks[:, positive] - pos_ranks) / n
    v01 = 1.0 - (all_ranks[:, ~positive] - neg_ranks) / m
    return rank_auc(scores, labels), v10, v01


def _paired_oof(oof_a: pd.DataFrame, oof_b: pd.DataFrame, names: tuple[str, str]) -> pd.DataFrame:
    a = oof_a.astype({"id": str}).drop_duplicates("id")
    b = oof_b.astype({"id": str}).drop_duplicates("id")
    merged = pd.merge(a, b, on="id", suffixes=("_a", "_b"))
    if merged.empty:
        raise RbpError(f"{names[0]} and {names[1]} have no out-of-fold prediction for the same sequence "
                       "id: no paired AUC comparison")
    if (merged["label_a"] != merged["label_b"]).any():
        raise RbpError(f"{names[0]} and {names[1]} disagree on the label of some sequences: "
                       "their predictions come from different data")
    if "fold_a" in merged and "fold_b" in merged and (merged["fold_a"] != merged["fold_b"]).any():
        raise RbpError(f"{names[0]} and {names[1]} put some sequences in different folds: "
                       "no paired comparison")
    if merged["label_a"].nunique() < 2:
        raise RbpError(f"the shared predictions of {names[0]} and {names[1]} hold one class only: no AUC")
    return merged


def auc_difference_ci(oof_a: pd.DataFrame, oof_b: pd.DataFrame, method: str = "delong",
                      confidence: float = 0.95, n_boot: int = 2000, seed: int = 0,
                      names: tuple[str, str] = ("a", "b")) -> AucDifference:
    """A confidence interval and p-value for AUC(a) − AUC(b) on pooled out-of-fold predictions.

    `delong`: DeLong, DeLong & Clarke-Pearson (1988) test for two correlated ROC AUCs (normal
    approximation). `bootstrap`: a stratified bootstrap (positives and negatives resampled apart,
    both models on the same resample) with a percentile interval; p is twice the smaller tail.
    """
    merged = _paired_oof(oof_a, oof_b, names)
    labels = merged["label_a"].to_numpy(int)
    scores = np.vstack([merged["probability_a"].to_numpy(float), merged["probability_b"].to_numpy(float)])
    aucs, v10, v01 = delong_components(scores, labels)
    difference = float(aucs[0] - aucs[1])
    alpha = 1 - confidence
    if method == "delong":
        low, high, p = _delong_interval(difference, v10, v01, alpha)
    elif method == "bootstrap":
        low, high, p = _bootstrap_interval(scores, labels, alpha, n_boot, seed)
    else:
        raise RbpError(f"method must be 'delong' or 'bootstrap', got {method!r}")
    return AucDifference(names[0], names[1], method, len(labels), int(labels.sum()),
                         int((labels == 0).sum()), float(aucs[0]), float(aucs[1]), difference,
                         low, high, confidence, p)


def _delong_interval(difference: float, v10: np.ndarray, v01: np.ndarray, alpha: float):
    s10, s01 = np.cov(v10), np.cov(v01)
    contrast = np.array([1.0, -1.0])
    variance = contrast @ s10 @ contrast / v10.shape[1] + contrast @ s01 @ contrast / v01.shape[1]
    if variance <= 0:  # identical scores: no uncertainty about a zero difference
        return difference, difference, 1.0 if difference == 0 else 0.0
    se = math.sqrt(variance)
    z = stats.norm.ppf(1 - alpha / 2)
    p = 2 * stats.norm.sf(abs(difference) / se)
    return difference - z * se, difference + z * se, float(p)


def _bootstrap_interval(scores: np.ndarray, labels: np.ndarray, alpha: float, n_boot: int, seed: int):
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    sample_labels = np.r_[np.ones(len(positives), int), np.zeros(len(negatives), int)]
    differences = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.r_[rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))]
        aucs = rank_auc(scores[:, idx], sample_labels)
        differences[i] = aucs[0] - aucs[1]
    low, high = np.quantile(differences, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0)))
    return float(low), float(high), float(p)


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values, in the order given.

    Comparing k models with one best makes k tests, and the smallest of k p-values is small by chance
    alone; Holm's adjustment keeps the chance of any false "differs" at the nominal level, without
    assuming the tests independent (they share the best model). A NaN (a test that could not be run)
    stays NaN and is not counted among the tests. Adjusted values never fall below a smaller raw
    p-value's adjusted value and are capped at 1.
    """
    raw = np.asarray(pvalues, dtype=float).reshape(-1)
    adjusted = np.full(raw.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(raw))
    order = tested[np.argsort(raw[tested], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(order) - rank) * raw[index])
        adjusted[index] = min(1.0, running)
    return adjusted
