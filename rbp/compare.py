"""Compare the models of a pipeline run from MLflow alone: tables, paired tests, AUC intervals.

Reading (MLflow): a pipeline run's CV runs (`lstm_cv`, `dnabert_cv`, …), their fold runs' test
metrics, pooled out-of-fold predictions and per-epoch validation AUC. Statistics: pure functions
on DataFrames (no MLflow), so they can be checked against scipy directly. Logging: tables and
figures go to the pipeline run being compared; `log_report` exports the executed compare notebook
to HTML for the pipeline driver (a notebook cannot export itself while papermill runs it).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rbp.errors import RbpError
from rbp.metrics import TEST_METRICS, format_mean_std

# Fold-run metric (rbp.metrics.TEST_METRICS) -> the column stem of the summary table, in table order.
METRICS = dict(zip(TEST_METRICS, ("roc_auc", "auprc", "accuracy", "f1", "mcc", "precision", "recall"), strict=True))
METRIC_TITLES = {"roc_auc": "ROC AUC", "auprc": "AUPRC", "accuracy": "accuracy", "f1": "F1",
                 "mcc": "MCC", "precision": "precision", "recall": "recall"}
NOT_MODELS = {"pipeline", "data"}  # model_family values of runs that are not CV runs
# The original exercise on PUM2 (design.md): reported there, not measured here.
REPORTED = [
    {"model": "LSTM (reported)", "accuracy_mean": 0.8952, "roc_auc_mean": 0.9411},
    {"model": "DNABERT-3 (pretrained, reported)", "accuracy_mean": 0.9259, "roc_auc_mean": 0.9692},
]
ARTIFACT_DIR = "compare"


# ---------------------------------------------------------------------------------------------
# Finding the runs


@dataclass(frozen=True)
class CVRun:
    """One model's cross-validation run (the parent of its fold runs)."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    tags: dict = field(hash=False, compare=False)

    @property
    def family(self) -> str:
        return self.tags.get("model_family", "")

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def folds_sha256(self) -> str | None:
        return self.tags.get("folds_sha256")

    @property
    def label(self) -> str:
        return model_label(self.tags)


def model_label(tags: dict) -> str:
    """"LSTM", "DNABERT (pretrained)" / "DNABERT (scratch)", or the family name of another model."""
    family = tags.get("model_family", "") or "unknown"
    window = f", {tags['length']} nt" if tags.get("length", "full") != "full" else ""
    if family == "lstm":
        return f"LSTM ({window[2:]})" if window else "LSTM"
    if family == "dnabert":
        init = tags.get("init")
        return f"DNABERT ({init}{window})" if init else "DNABERT"
    return family + window


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _get_run(run_id: str, what: str):
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_run(run_id)
    except MlflowException:
        raise RbpError(f"{what} {run_id!r}: no such run in the MLflow store "
                       f"{_client().tracking_uri}") from None


def _search(experiment_ids: list[str], filter_string: str, **kwargs) -> list:
    return list(_client().search_runs(experiment_ids, filter_string, max_results=5000, **kwargs))


def latest_pipeline_run(experiment: str) -> str:
    """The id of the most recently started pipeline run (tag model_family = pipeline) of `experiment`."""
    found = _client().get_experiment_by_name(experiment)
    if found is None:
        raise RbpError(f"MLflow experiment {experiment!r} does not exist in {_client().tracking_uri}: "
                       "set dataset (or compare_run_id) to the experiment of the run to compare")
    runs = _search([found.experiment_id], "tags.model_family = 'pipeline'",
                   order_by=["attributes.start_time DESC"])
    if not runs:
        raise RbpError(f"MLflow experiment {experiment!r} has no pipeline run (tag model_family = "
                       "pipeline): run `rbp run` first, or pass compare_cv_run_ids")
    return runs[0].info.run_id


def _cv_run(run) -> CVRun:
    return CVRun(run.info.run_id, run.info.run_name, run.info.experiment_id, run.info.status,
                 dict(run.data.tags))


def _is_cv_run(run) -> bool:
    family = run.data.tags.get("model_family")
    return bool(family) and family not in NOT_MODELS and "fold" not in run.data.tags


def find_cv_runs(experiment: str | None = None, pipeline_run_id: str | None = None,
                 cv_run_ids: list[str] | None = None) -> list[CVRun]:
    """The CV runs to compare, in table order (DNABERT first, then LSTM, then others).

    `cv_run_ids` wins; else the CV runs under `pipeline_run_id`; else those under the latest
    pipeline run of `experiment`. A CV run is a child run whose model_family is a model (not
    pipeline or data), e.g. `lstm_cv` or `dnabert_cv`.
    """
    if cv_run_ids:
        if isinstance(cv_run_ids, str):
            cv_run_ids = [cv_run_ids]
        runs = [_get_run(run_id, "compare_cv_run_ids: run") for run_id in cv_run_ids]
        for run in runs:
            if not _is_cv_run(run):
                family = run.data.tags.get("model_family", "none")
                raise RbpError(f"compare_cv_run_ids: run {run.info.run_name} ({run.info.run_id}) is not a "
                               f"CV run (model_family tag: {family}); pass the ids of the *_cv runs, or "
                               "a pipeline run as compare_run_id")
        return _in_table_order([_cv_run(run) for run in runs])
    if pipeline_run_id is None:
        if not experiment:
            raise RbpError("nothing to compare: give an experiment, a pipeline run id or CV run ids")
        pipeline_run_id = latest_pipeline_run(experiment)
    pipeline = _get_run(pipeline_run_id, "compare_run_id: run")
    children = _search([pipeline.info.experiment_id], f"tags.mlflow.parentRunId = '{pipeline_run_id}'")
    cv_runs = [_cv_run(run) for run in children if _is_cv_run(run)]
    if not cv_runs:
        others = ", ".join(sorted(run.info.run_name for run in children)) or "none"
        raise RbpError(f"pipeline run {pipeline.info.run_name} ({pipeline_run_id}) has no CV runs "
                       f"(child runs named *_cv with a model_family tag; its child runs: {others}): "
                       "add 02_dnabert_cv and/or 03_lstm_cv to its notebooks, or pass compare_run_id "
                       "for another pipeline run")
    return _in_table_order(cv_runs)


def _in_table_order(cv_runs: list[CVRun]) -> list[CVRun]:
    rank = {"dnabert": 0, "lstm": 1}
    return sorted(cv_runs, key=lambda r: (rank.get(r.family, 2), r.label, r.run_name))


def pipeline_run_of(cv_runs: list[CVRun]) -> str | None:
    """The pipeline run the CV runs share (where the comparison is logged), or None."""
    parents = {run.parent_run_id for run in cv_runs}
    return parents.pop() if len(parents) == 1 else None


def describe_runs(cv_runs: list[CVRun]) -> pd.DataFrame:
    return pd.DataFrame([{"model": label, "run": run.run_name, "run_id": run.run_id, "status": run.status,
                          "folds_sha256": (run.folds_sha256 or "")[:12]}
                         for label, run in unique_labels(cv_runs).items()])


def unique_labels(cv_runs: list[CVRun]) -> dict[str, CVRun]:
    """Label -> run; two runs with the same label (e.g. from two pipelines) get their run id added."""
    counts = pd.Series([run.label for run in cv_runs]).value_counts()
    return {(run.label if counts[run.label] == 1 else f"{run.label} [{run.run_id[:8]}]"): run
            for run in cv_runs}


# ---------------------------------------------------------------------------------------------
# Loading what the CV runs logged


@dataclass
class ModelResults:
    label: str
    cv_run: CVRun
    fold_metrics: pd.DataFrame  # fold, best_epoch, test_* (one row per fold), folds_sha256
    oof: pd.DataFrame | None  # pooled out-of-fold predictions: id, label, probability, fold
    history: pd.DataFrame  # fold, epoch, val_auc


@contextmanager
def _quiet_downloads():
    """No progress bar per small CSV: in a notebook they bury the tables."""
    previous = os.environ.get(_PROGRESS_BAR)
    os.environ[_PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_PROGRESS_BAR, None)
        else:
            os.environ[_PROGRESS_BAR] = previous


_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _artifact_frame(run_id: str, path: str) -> pd.DataFrame | None:
    """A CSV artifact of a run, or None when the run did not log it."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
        try:
            local = _client().download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError):
            return None
        return pd.read_csv(local, dtype={"id": str})


def fold_runs(cv_run: CVRun) -> list:
    runs = _search([cv_run.experiment_id], f"tags.mlflow.parentRunId = '{cv_run.run_id}'")
    return sorted((run for run in runs if "fold" in run.data.tags), key=lambda r: int(r.data.tags["fold"]))


def load_fold_metrics(cv_run: CVRun, runs: list | None = None) -> pd.DataFrame:
    """One row per fold: from the fold runs' metrics, else the CV run's fold_metrics.csv."""
    runs = fold_runs(cv_run) if runs is None else runs
    rows = [{"fold": int(run.data.tags["fold"]),
             **{key: run.data.metrics.get(key, math.nan) for key in ("best_epoch", *METRICS)}}
            for run in runs if "test_auc" in run.data.metrics]
    frame = pd.DataFrame(rows) if rows else _artifact_frame(cv_run.run_id, "fold_metrics.csv")
    if frame is None or frame.empty:
        raise RbpError(f"CV run {cv_run.run_name} ({cv_run.run_id}, {cv_run.status}) has no fold results: "
                       "neither fold runs with test_auc nor fold_metrics.csv; did it finish?")
    frame = frame.reindex(columns=["fold", "best_epoch", *METRICS])
    frame["fold"] = frame["fold"].astype(int)
    frame["folds_sha256"] = cv_run.folds_sha256
    return frame.sort_values("fold", ignore_index=True)


def load_oof_predictions(cv_run: CVRun, runs: list | None = None) -> pd.DataFrame | None:
    """Pooled out-of-fold predictions: the CV run's oof_predictions.csv, else the folds' predictions."""
    frame = _artifact_frame(cv_run.run_id, "oof_predictions.csv")
    if frame is None:
        runs = fold_runs(cv_run) if runs is None else runs
        parts = [_artifact_frame(run.info.run_id, "predictions.csv") for run in runs]
        parts = [part for part in parts if part is not None]
        frame = pd.concat(parts, ignore_index=True) if parts else None
    return frame


def load_history(cv_run: CVRun, runs: list | None = None, metric: str = "val_auc") -> pd.DataFrame:
    """`metric` per epoch of each fold run (step = epoch): columns fold, epoch, <metric>."""
    runs = fold_runs(cv_run) if runs is None else runs
    rows = [{"fold": int(run.data.tags["fold"]), "epoch": point.step, metric: point.value}
            for run in runs for point in _client().get_metric_history(run.info.run_id, metric)]
    return pd.DataFrame(rows, columns=["fold", "epoch", metric])


def load_results(cv_runs: list[CVRun]) -> dict[str, ModelResults]:
    results = {}
    for label, cv_run in unique_labels(cv_runs).items():
        runs = fold_runs(cv_run)
        results[label] = ModelResults(label, cv_run, load_fold_metrics(cv_run, runs),
                                      load_oof_predictions(cv_run, runs), load_history(cv_run, runs))
    return results


# ---------------------------------------------------------------------------------------------
# The summary table


def summary_table(fold_metrics_by_model: dict[str, pd.DataFrame], labels: dict[str, str] | None = None
                  ) -> pd.DataFrame:
    """Per model: mean and std (ddof=1, over folds) of the seven test metrics, and the fold count.

    `fold_metrics_by_model` maps a model (its label, or a key that `labels` turns into one) to its
    fold metrics (one row per fold, columns test_auc, test_auprc, …).
    """
    rows = []
    for key, frame in fold_metrics_by_model.items():
        row = {"model": (labels or {}).get(key, key), "source": "measured",
               "n_folds": int(frame["test_auc"].notna().sum())}
        for metric, name in METRICS.items():
            values = frame[metric].astype(float) if metric in frame else pd.Series(dtype=float)
            row[f"{name}_mean"] = values.mean()
            row[f"{name}_std"] = values.std(ddof=1) if values.notna().sum() > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=_table_columns())


def _table_columns() -> list[str]:
    return ["model", "source", "n_folds",
            *itertools.chain.from_iterable((f"{n}_mean", f"{n}_std") for n in METRICS.values())]


def reference_rows() -> pd.DataFrame:
    """The original exercise's figures on PUM2, as rows marked reported (not measured here)."""
    rows = [{**row, "source": "reported (original exercise, PUM2)"} for row in REPORTED]
    return pd.DataFrame(rows).reindex(columns=_table_columns())


def format_table(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The summary table for reading: `mean ± std` per metric, blank where nothing was reported."""
    def cell(mean, std):
        if pd.isna(mean):
            return ""
        return format_mean_std(mean, None if pd.isna(std) else std, digits)

    out = pd.DataFrame({"model": table["model"], "source": table["source"],
                        "folds": table["n_folds"].map(lambda n: "" if pd.isna(n) else str(int(n)))})
    for name, title in METRIC_TITLES.items():
        out[title] = [cell(m, s) for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"], strict=True)]
    return out.set_index("model")


# ---------------------------------------------------------------------------------------------
# Paired statistics


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


def _same_folds_sha(a: pd.DataFrame, b: pd.DataFrame) -> tuple[str | None, str | None]:
    def sha(frame):
        values = set(frame["folds_sha256"].dropna()) if "folds_sha256" in frame else set()
        return next(iter(values)) if len(values) == 1 else None

    return sha(a), sha(b)


def paired_tests(fold_metrics_a: pd.DataFrame, fold_metrics_b: pd.DataFrame, metric: str = "test_auc",
                 names: tuple[str, str] = ("a", "b")) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of a − b over the folds both models ran.

    Refuses (RbpError) when the two were cross-validated on different folds (folds_sha256 differs)
    or share no fold: then the folds are not paired and a paired test means nothing.
    """
    sha_a, sha_b = _same_folds_sha(fold_metrics_a, fold_metrics_b)
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


def _midranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong_components(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong's structural components (Sun & Xu 2014, via midranks) for k score rows over one sample.

    Returns the AUCs (k,), V10 (k × positives) and V01 (k × negatives).
    """
    scores = np.atleast_2d(scores)
    positive = labels == 1
    m, n = positive.sum(), (~positive).sum()
    aucs, v10, v01 = [], [], []
    for row in scores:
        all_ranks = _midranks(row)
        pos_ranks, neg_ranks = _midranks(row[positive]), _midranks(row[~positive])
        v10.append((all_ranks[positive] - pos_ranks) / n)
        v01.append(1.0 - (all_ranks[~positive] - neg_ranks) / m)
        aucs.append((all_ranks[positive].sum() - m * (m + 1) / 2) / (m * n))
    return np.array(aucs), np.array(v10), np.array(v01)


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


def _rank_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (Mann-Whitney with midranks)."""
    m, n = labels.sum(), (labels == 0).sum()
    ranks = stats.rankdata(scores, method="average", axis=-1)
    return (ranks[..., labels == 1].sum(axis=-1) - m * (m + 1) / 2) / (m * n)


def _bootstrap_interval(scores: np.ndarray, labels: np.ndarray, alpha: float, n_boot: int, seed: int):
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    sample_labels = np.r_[np.ones(len(positives), int), np.zeros(len(negatives), int)]
    differences = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.r_[rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))]
        aucs = _rank_auc(scores[:, idx], sample_labels)
        differences[i] = aucs[0] - aucs[1]
    low, high = np.quantile(differences, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0)))
    return float(low), float(high), float(p)


# ---------------------------------------------------------------------------------------------
# All pairs of models


@dataclass
class Comparison:
    tests: pd.DataFrame  # one row per pair: the paired tests over folds
    fold_differences: pd.DataFrame  # model_a, model_b, fold, a, b, difference
    auc_differences: pd.DataFrame  # one row per pair: pooled OOF AUC difference with CI and p
    notes: list[str]


def compare_models(results: dict[str, ModelResults], metric: str = "test_auc", method: str = "delong",
                   confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Every pair of models (in table order): paired tests on shared folds, CI of the pooled AUC."""
    tests, differences, aucs, notes = [], [], [], []
    if len(results) < 2:
        only = ", ".join(results) or "none"
        notes.append(f"Only one model ({only}): no paired comparison and no test; "
                     "a test needs two models cross-validated on the same folds.")
    for a, b in itertools.combinations(results, 2):
        try:
            test = paired_tests(results[a].fold_metrics, results[b].fold_metrics, metric, (a, b))
        except RbpError as exc:
            notes.append(f"{a} vs {b}: {exc}")
            continue
        tests.append(test.as_row())
        differences.append(test.differences.assign(model_a=a, model_b=b))
        if test.note:
            notes.append(f"{a} vs {b}: {test.note}")
        if results[a].oof is None or results[b].oof is None:
            notes.append(f"{a} vs {b}: no out-of-fold predictions logged, no CI for the pooled AUC")
            continue
        try:
            aucs.append(auc_difference_ci(results[a].oof, results[b].oof, method, confidence,
                                          seed=seed, names=(a, b)).as_row())
        except RbpError as exc:
            notes.append(f"{a} vs {b}: {exc}")
    difference_columns = ["model_a", "model_b", "fold", "a", "b", "difference"]
    return Comparison(
        pd.DataFrame(tests, columns=TEST_COLUMNS),
        pd.concat(differences, ignore_index=True)[difference_columns] if differences
        else pd.DataFrame(columns=difference_columns),
        pd.DataFrame(aucs, columns=[f.name for f in dataclasses.fields(AucDifference)]),
        notes,
    )


# ---------------------------------------------------------------------------------------------
# Logging to the pipeline run, and the HTML report


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN becomes null)."""
    return json.loads(frame.to_json(orient="records"))


def log_comparison(run_id: str, table: pd.DataFrame, comparison: Comparison, figures: dict,
                   cv_runs: list[CVRun] | None = None) -> list[str]:
    """Tables (CSV and JSON) and figures (PNG) under `compare/` of run `run_id`; returns the paths.

    Works whether the run is still RUNNING (the pipeline driving this notebook) or FINISHED.
    """
    client = _client()
    logged = []

    def text(content: str, name: str) -> None:
        client.log_text(run_id, content, f"{ARTIFACT_DIR}/{name}")
        logged.append(f"{ARTIFACT_DIR}/{name}")

    text(table.to_csv(index=False), "summary.csv")
    text(comparison.tests.to_csv(index=False), "paired_tests.csv")
    text(comparison.fold_differences.to_csv(index=False), "fold_differences.csv")
    text(comparison.auc_differences.to_csv(index=False), "auc_difference.csv")
    summary = {
        "summary": _records(table),
        "paired_tests": _records(comparison.tests),
        "auc_difference": _records(comparison.auc_differences),
        "notes": comparison.notes,
        "cv_runs": {run.label: run.run_id for run in cv_runs or []},
    }
    text(json.dumps(summary, indent=2) + "\n", "summary.json")
    for name, figure in figures.items():
        path = f"{ARTIFACT_DIR}/figures/{name}.png"
        client.log_figure(run_id, figure, path)
        logged.append(path)
    return logged


def export_html(notebook_path: str | Path, html_path: str | Path | None = None,
                exclude_input: bool = False) -> Path:
    """An executed notebook as a standalone HTML page (figures embedded); returns its path."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook_path = Path(notebook_path)
    if not notebook_path.is_file():
        raise RbpError(f"{notebook_path}: no notebook to export")
    html_path = Path(html_path) if html_path else notebook_path.with_suffix(".html")
    exporter = HTMLExporter(exclude_input=exclude_input, exclude_input_prompt=exclude_input,
                            exclude_output_prompt=exclude_input)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def log_report(notebook_path: str | Path, run_id: str, html_path: str | Path | None = None,
               exclude_input: bool = True, artifact_path: str = "reports") -> Path:
    """Export the executed compare notebook to HTML beside it and log it to run `run_id`.

    For the pipeline driver, after papermill has executed 04_compare into outputs/<run-name>/.
    """
    html = export_html(notebook_path, html_path, exclude_input)
    _client().log_artifact(run_id, str(html), artifact_path)
    return html
