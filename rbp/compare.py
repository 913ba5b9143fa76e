"""Compare the models of a pipeline run: the summary table over folds, every pair's paired tests and
pooled-AUC interval, and logging them to the pipeline run.

Reading MLflow is `rbp.runs`; the statistics are `rbp.stats`; the figures `rbp.plots.compare`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pandas as pd

from rbp.errors import RbpError
from rbp.metrics import format_summary, summary_table
from rbp.runs import CVRun, ModelResults, client
from rbp.stats import AUC_COLUMNS, TEST_COLUMNS, auc_difference_ci, paired_tests

# The original exercise on PUM2: reported there (read off its test folds), not measured here.
REPORTED = [
    {"model": "LSTM (reported)", "mean_test_acc": 0.8952, "mean_test_auc": 0.9411},
    {"model": "DNABERT-3 (pretrained, reported)", "mean_test_acc": 0.9259, "mean_test_auc": 0.9692},
]
ARTIFACT_DIR = "compare"


def results_table(results: dict[str, ModelResults]) -> pd.DataFrame:
    """The summary over folds of every model, marked as measured here."""
    table = summary_table({label: r.fold_metrics for label, r in results.items()})
    return table.assign(source="measured")


def reference_rows() -> pd.DataFrame:
    """The original exercise's figures on PUM2, as rows marked reported (not measured here)."""
    rows = [{**row, "source": "reported (original exercise, PUM2)"} for row in REPORTED]
    return pd.DataFrame(rows).reindex(columns=summary_table({}).columns.tolist() + ["source"])


def format_table(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The summary table for reading: model, source, folds, then `mean ± std` per metric."""
    formatted = format_summary(table, digits)
    return formatted[["source", *[c for c in formatted.columns if c != "source"]]]


@dataclass
class Comparison:
    tests: pd.DataFrame  # one row per pair: the paired tests over folds
    fold_differences: pd.DataFrame  # model_a, model_b, fold, a, b, difference
    auc_differences: pd.DataFrame  # one row per pair: pooled OOF AUC difference with CI and p
    notes: list[str]


DIFFERENCE_COLUMNS = ["model_a", "model_b", "fold", "a", "b", "difference"]


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
    return Comparison(
        pd.DataFrame(tests, columns=TEST_COLUMNS),
        pd.concat(differences, ignore_index=True)[DIFFERENCE_COLUMNS] if differences
        else pd.DataFrame(columns=DIFFERENCE_COLUMNS),
        pd.DataFrame(aucs, columns=AUC_COLUMNS),
        notes,
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN becomes null)."""
    return json.loads(frame.to_json(orient="records"))


def log_comparison(run_id: str, table: pd.DataFrame, comparison: Comparison, figures: dict,
                   cv_runs: list[CVRun] | None = None) -> list[str]:
    """Tables (CSV and JSON) and figures (PNG) under `compare/` of run `run_id`; returns the paths.

    Works whether the run is still RUNNING (the pipeline driving this notebook) or FINISHED.
    """
    logged = []

    def text(content: str, name: str) -> None:
        client().log_text(run_id, content, f"{ARTIFACT_DIR}/{name}")
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
        client().log_figure(run_id, figure, path)
        logged.append(path)
    return logged
