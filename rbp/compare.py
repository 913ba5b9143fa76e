"""Compare the models of a pipeline run: the summary table over folds, every pair's paired tests and
pooled-AUC interval, and logging them to the pipeline run.

Reading MLflow is `rbp.runs`; the statistics are `rbp.stats`; the figures `rbp.plots.compare`.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

import pandas as pd

from rbp.errors import RbpError
from rbp.metrics import (
    BINARY,
    DNABERT_STYLE,
    format_mean_std,
    format_summary,
    metric,
    summary_columns,
    summary_table,
)
from rbp.runs import CVRun, ModelResults, client
from rbp.stats import AUC_COLUMNS, TEST_COLUMNS, auc_difference_ci, paired_tests

# The original exercise on PUM2: reported there (read off its test folds), not measured here.
REPORTED = [
    {"model": "LSTM (reported)", "mean_test_acc": 0.8952, "mean_test_auc": 0.9411},
    {"model": "DNABERT-3 (pretrained, reported)", "mean_test_acc": 0.9259, "mean_test_auc": 0.9692},
]
REPORTED_DATASET = "pum2"  # the reported rows are shown beside runs on this data set only
ARTIFACT_DIR = "compare"
HEADLINE = ("test_auc", "test_auprc", "test_acc")  # the metrics of the verdict table
SYNTHETIC_BANNER = (
    "**SYNTHETIC DATA.** These models were trained and tested on the built-in synthetic set, whose "
    "answer is known: its ceiling row is the best ROC AUC any model can reach on it. The figures show "
    "the pipeline working and how close each model gets to that ceiling; they say nothing about real "
    "binding sites.")
VERDICT_FILE = "verdict.json"  # in the run folder and under compare/: read by the pipeline driver


def results_table(results: dict[str, ModelResults]) -> pd.DataFrame:
    """The summary over folds of every model, marked as measured here."""
    table = summary_table({label: r.fold_metrics for label, r in results.items()})
    return table.assign(source="measured")


def reference_rows(dataset: str | None = REPORTED_DATASET, ceiling: float | None = None) -> pd.DataFrame:
    """Rows to read the measured ones against: the best possible ROC AUC of a synthetic set (its
    planted truth), or the original exercise's reported figures for PUM2; none for other data."""
    rows = []
    if ceiling is not None:
        rows.append({"model": "ceiling (planted truth)", "mean_test_auc": ceiling,
                     "source": "best possible on this synthetic set"})
    elif (dataset or "").lower() == REPORTED_DATASET:
        rows = [{**row, "source": "reported (original exercise, PUM2)"} for row in REPORTED]
    return pd.DataFrame(rows).reindex(columns=summary_table({}).columns.tolist() + ["source"])


def protocol_note(cv_runs: list[CVRun]) -> str | None:
    """What a reader must know when some runs chose no epoch (DNABERT's own protocol), or None."""
    parity = [run.label for run in cv_runs if run.tags.get("selection") == "final"]
    if not parity:
        return None
    return (f"**{', '.join(parity)}**: DNABERT's own protocol, not the selection described above: each fold "
            "trained on its whole training part (no validation split) and its final epoch was evaluated. No "
            "epoch was chosen, on validation or on test data; such runs compare with DNABERT's published "
            "figures, and have no validation curve below.")


def format_table(table: pd.DataFrame, digits: int = 4, metrics=BINARY) -> pd.DataFrame:
    """The summary table for reading: model, source, folds, then `mean ± std` per metric."""
    formatted = format_summary(table, digits, metrics)
    return formatted[["source", *[c for c in formatted.columns if c != "source"]]]


def dnabert_style_table(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame | None:
    """The measured models in DNABERT's own metrics (macro F1, precision and recall beside accuracy,
    MCC, ROC AUC and AUPRC), to read a DNABERT run against DNABERT's published figures; None when no
    DNABERT model is among them."""
    measured = table[table.source == "measured"]
    if not measured.model.str.startswith("DNABERT").any():
        return None
    return format_table(measured, digits, DNABERT_STYLE).drop(columns="source")


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


def format_p(p: float) -> str:
    """A p-value for reading: `< 1e-10` below that, scientific below 0.001, else three decimals."""
    if pd.isna(p):
        return "–"
    if p < 1e-10:
        return "< 1e-10"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


@dataclass
class Verdict:
    sentence: str  # who wins, by how much, the interval, on how many folds
    table: pd.DataFrame  # model, folds and mean ± std of the headline metrics, best first
    metrics: dict[str, float]  # headline figures for the pipeline run


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def verdict(table: pd.DataFrame, comparison: Comparison, ceiling: float | None = None) -> Verdict:
    """The comparison in one sentence and one small table: the models ranked by mean test ROC AUC,
    the first against the second by the interval of their pooled out-of-fold AUC difference."""
    measured = table[table.source == "measured"].sort_values("mean_test_auc", ascending=False, ignore_index=True)
    shown = format_summary(measured[["model", "n_folds", *summary_columns()]])
    keep = [metric(key).label for key in HEADLINE]
    metrics = {f"{_slug(row['model'])}.{stat}_{key}": row[f"{stat}_{key}"]
               for _, row in measured.iterrows() for key in HEADLINE for stat in ("mean", "std")}
    metrics = {key: float(value) for key, value in metrics.items() if pd.notna(value)}
    if ceiling is not None:
        metrics["ceiling_auc"] = ceiling
    if measured.empty:
        return Verdict("No model finished: nothing to compare.", shown[["folds", *keep]], metrics)
    first = measured.iloc[0]
    auc = format_mean_std(first.mean_test_auc, first.std_test_auc, 3)
    lead = f"{first.model}: test ROC AUC {auc} over {int(first.n_folds)} folds"
    if ceiling is not None:
        lead += f", {ceiling - first.mean_test_auc:.3f} below the ceiling of {ceiling:.3f} (the planted truth)"
    if len(measured) < 2:
        return Verdict(f"One model only. {lead}.", shown[["folds", *keep]], metrics)
    second = measured.iloc[1]
    pair = comparison.auc_differences
    row = pair[((pair.model_a == first.model) & (pair.model_b == second.model))
               | ((pair.model_a == second.model) & (pair.model_b == first.model))]
    fold_gap = first.mean_test_auc - second.mean_test_auc
    against = (f"{second.model}: {format_mean_std(second.mean_test_auc, second.std_test_auc, 3)}; "
               f"{fold_gap:+.3f} on the mean over folds")
    if row.empty:
        sentence = f"{first.model} scores highest. {lead}; {against} (no paired interval: see the notes)."
    else:
        d = row.iloc[0]
        sign = 1 if d.model_a == first.model else -1
        low, high = sorted((sign * d.ci_low, sign * d.ci_high))
        difference = sign * d.difference
        interval = (f"pooled out-of-fold ROC AUC difference {difference:+.3f} "
                    f"({d.confidence:.0%} CI {low:+.3f} to {high:+.3f}, DeLong p {format_p(d.p_value)})")
        if low > 0:
            sentence = f"{first.model} beats {second.model}. {lead}; {against}; {interval}."
        elif high < 0:
            sentence = (f"No clear winner: {first.model} has the higher mean over folds, {second.model} the higher "
                        f"pooled out-of-fold AUC (pooling mixes the folds' score scales). {lead}; {against}; "
                        f"{interval}.")
        else:
            sentence = (f"{first.model} and {second.model} cannot be told apart on this data: the interval "
                        f"holds zero. {lead}; {against}; {interval}.")
        metrics.update({"difference.test_auc": difference, "difference.ci_low": low, "difference.ci_high": high,
                        "difference.p_value": float(d.p_value)})
    return Verdict(sentence, shown[["folds", *keep]], metrics)


def format_tests(comparison: Comparison) -> pd.DataFrame:
    """The paired tests over folds, for reading."""
    t = comparison.tests
    return pd.DataFrame({
        "model a": t.model_a, "model b": t.model_b, "folds": t.n_folds,
        "mean difference (a − b)": t.mean_difference.map(lambda x: f"{x:+.4f}"),
        "std of the difference": t.std_difference.map(lambda x: "–" if pd.isna(x) else f"{x:.4f}"),
        "paired t-test p": t.t_pvalue.map(format_p), "Wilcoxon p": t.wilcoxon_pvalue.map(format_p),
    }).set_index(["model a", "model b"])


def format_auc_differences(comparison: Comparison) -> pd.DataFrame:
    """The pooled out-of-fold AUC differences with their intervals, for reading."""
    d = comparison.auc_differences
    return pd.DataFrame({
        "model a": d.model_a, "model b": d.model_b,
        "sequences": [f"{n} ({p} +, {m} −)" for n, p, m in zip(d.n, d.n_positives, d.n_negatives, strict=True)],
        "ROC AUC a": d.auc_a.map(lambda x: f"{x:.4f}"), "ROC AUC b": d.auc_b.map(lambda x: f"{x:.4f}"),
        "difference": d.difference.map(lambda x: f"{x:+.4f}"),
        "interval": [f"{c:.0%} CI {lo:+.4f} to {hi:+.4f}" for c, lo, hi in
                     zip(d.confidence, d.ci_low, d.ci_high, strict=True)],
        "p": d.p_value.map(format_p), "method": d.method,
    }).set_index(["model a", "model b"])


def verdict_json(verdict: Verdict) -> str:
    return json.dumps({"sentence": verdict.sentence, "table": _records(verdict.table.reset_index()),
                       "metrics": verdict.metrics}, indent=2) + "\n"


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN becomes null)."""
    return json.loads(frame.to_json(orient="records"))


def log_comparison(run_id: str, table: pd.DataFrame, comparison: Comparison, figures: dict,
                   cv_runs: list[CVRun] | None = None, verdict: Verdict | None = None) -> list[str]:
    """Tables (CSV and JSON) and figures (PNG) under `compare/` of run `run_id`, and the verdict's
    headline figures as its metrics; returns the artifact paths.

    Works whether the run is still RUNNING (the pipeline driving this notebook) or FINISHED.
    """
    logged = []
    if verdict is not None:
        for key, value in verdict.metrics.items():
            client().log_metric(run_id, key, value)

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
    if verdict is not None:
        text(verdict_json(verdict), VERDICT_FILE)
    for name, figure in figures.items():
        path = f"{ARTIFACT_DIR}/figures/{name}.png"
        client().log_figure(run_id, figure, path)
        logged.append(path)
    return logged
