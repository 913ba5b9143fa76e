"""Compare the models of a pipeline run: the summary table over folds, the best model chosen on
validation, each other model against it (paired tests over folds and the pooled-AUC interval, with
Holm-adjusted p-values). Plain results: `rbp.reporting` puts them in words, `rbp.tracking` reads the
runs (`load_results`) and logs the comparison (`log_comparison`).

The best is chosen on the validation AUC of each fold's chosen epoch, never on test figures: a model
picked for its test score would carry its lucky folds into the comparison that is meant to judge it.
When no model logged a validation AUC, none is chosen and every pair is compared instead.

The statistics are `rbp.stats`; the figures `rbp.plots.compare`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rbp.errors import RbpError
from rbp.metrics import summary_table
from rbp.records import CVRun, ModelResults
from rbp.stats import AUC_COLUMNS, TEST_COLUMNS, auc_difference_ci, holm, paired_tests

# The original exercise on PUM2: reported there (read off its test folds), not measured here.
REPORTED = [
    {"model": "LSTM (reported)", "mean_test_acc": 0.8952, "mean_test_auc": 0.9411},
    {"model": "DNABERT-3 (pretrained, reported)", "mean_test_acc": 0.9259, "mean_test_auc": 0.9692},
]
REPORTED_DATASET = "pum2"  # the reported rows are shown beside runs on this data set only
ARTIFACT_DIR = "compare"
VALIDATION_KEY = "best_val_auc"  # per fold: the validation ROC AUC of the chosen epoch or setting
VALIDATION_COLUMNS = [f"mean_{VALIDATION_KEY}", f"std_{VALIDATION_KEY}"]
VALIDATION_LABEL = "validation ROC AUC"
CHOSEN_BY = "the highest mean validation ROC AUC of the chosen epochs (best_val_auc) over folds"


def validation_table(results: dict[str, ModelResults]) -> pd.DataFrame:
    """Per model (in table order): the folds with a validation AUC, its mean and std over them; NaN
    for a model that has none (no validation split, or a run logged before the metric existed)."""
    rows = []
    for label, result in results.items():
        frame = result.fold_metrics
        values = (pd.to_numeric(frame[VALIDATION_KEY], errors="coerce").astype(float) if VALIDATION_KEY in frame
                  else pd.Series(dtype=float))
        values = values[np.isfinite(values)]
        rows.append({"model": label, "n_folds_validation": len(values),
                     VALIDATION_COLUMNS[0]: values.mean() if len(values) else math.nan,
                     VALIDATION_COLUMNS[1]: values.std(ddof=1) if len(values) > 1 else math.nan})
    return pd.DataFrame(rows, columns=["model", "n_folds_validation", *VALIDATION_COLUMNS])


def validation_ranking(validation: pd.DataFrame) -> list[str]:
    """Models best first by mean validation AUC, those without one after them in table order."""
    ranked = validation.sort_values(VALIDATION_COLUMNS[0], ascending=False, na_position="last", kind="stable")
    return ranked.model.tolist()


def choose_best(validation: pd.DataFrame) -> tuple[str | None, str]:
    """The model with the highest mean validation AUC among those that have one, and a sentence saying
    why; (None, why not) when no model has validation figures."""
    eligible = validation.dropna(subset=[VALIDATION_COLUMNS[0]])
    if len(validation) < 2:
        only = eligible.model.iloc[0] if len(eligible) else None
        return only, "One model only: there is nothing to choose between."
    if eligible.empty:
        return None, ("No model logged a validation ROC AUC (best_val_auc), so no best model is chosen: "
                      "choosing on test figures would favour a model's lucky test folds. Every pair of models "
                      "is compared instead, and none of these tests says which model to pick.")
    top = eligible[VALIDATION_COLUMNS[0]].max()
    tied = eligible.model[eligible[VALIDATION_COLUMNS[0]] == top].tolist()
    best = eligible.set_index("model").loc[tied[0]]
    reason = (f"{tied[0]} is the best on validation: {CHOSEN_BY} ({top:.4f} over "
              f"{int(best.n_folds_validation)} folds, the highest of {len(eligible)} models with one); no test "
              "fold played a part in the choice. Each other model is compared against it.")
    if len(tied) > 1:
        reason += f" Tied with {', '.join(tied[1:])}: the first in table order is taken."
    without = validation.model[validation[VALIDATION_COLUMNS[0]].isna()].tolist()
    if without:
        reason += (f" Without a validation ROC AUC, so not eligible (e.g. trained without a validation split): "
                   f"{', '.join(without)}.")
    return tied[0], reason


def results_table(results: dict[str, ModelResults]) -> pd.DataFrame:
    """The summary over folds of every model, marked as measured here, with the mean validation AUC
    the best model is chosen on."""
    table = summary_table({label: r.fold_metrics for label, r in results.items()})
    validation = validation_table(results).set_index("model")
    for column in VALIDATION_COLUMNS:
        table[column] = table.model.map(validation[column]) if len(table) else pd.Series(dtype=float)
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
    return pd.DataFrame(rows).reindex(columns=summary_table({}).columns.tolist() + VALIDATION_COLUMNS + ["source"])


def protocol_note(cv_runs: list[CVRun]) -> str | None:
    """What a reader must know when some runs chose no epoch (DNABERT's own protocol), or None."""
    parity = [run.label for run in cv_runs if run.tags.get("selection") == "final"]
    if not parity:
        return None
    return (f"**{', '.join(parity)}**: DNABERT's own protocol, not the selection described above: each fold "
            "trained on its whole training part (no validation split) and its final epoch was evaluated. No "
            "epoch was chosen, on validation or on test data; such runs compare with DNABERT's published "
            "figures, have no validation curve below, and cannot be chosen as the best model.")


def test_protocol(results: dict[str, ModelResults]) -> tuple[str, str]:
    """Where the test figures of these runs come from: the protocol's kind (`cv`, `split` or
    `fixed_test`, from the runs' `protocol` tags) and one sentence for tables and reports, with the
    test sequences' share of binding sites, which is the AUPRC of a model that guesses."""
    results = list(results.values())
    kinds = {r.cv_run.tags.get("protocol") or ("cv" if r.fold_metrics.fold.nunique() > 1 else "split")
             for r in results}
    scored = next((r.oof for r in results if r.oof is not None and len(r.oof)), None)
    share = ""
    if scored is not None:
        tested = scored.drop_duplicates("id")
        bound = float(tested.label.mean())
        share = (f" {len(tested):,} test sequences, {bound:.1%} of them binding sites: a model that guesses has an "
                 f"AUPRC of {bound:.3f} (chance) and a ROC AUC of 0.5.")
    if len(kinds) > 1:
        return "mixed", (f"**Test figures come from different protocols** ({', '.join(sorted(kinds))}): these runs "
                         f"were not tested alike, so read their differences with care.{share}")
    kind = kinds.pop() if kinds else "cv"
    if kind == "fixed_test":
        sha = next((r.cv_run.tags.get("test_sha256", "") for r in results), "")
        return kind, (f"Test figures: a fixed test set (sha256 {sha[:12]}), scored once per model; every model was "
                      f"trained, and its epoch or strength chosen, on the training data alone.{share}")
    if kind == "split":
        return kind, f"Test figures: one stratified train/test split, each model scored once on its test part.{share}"
    n = max((int(r.fold_metrics.fold.nunique()) for r in results if len(r.fold_metrics)), default=0)
    return kind, (f"Test figures: {n}-fold cross-validation, every sequence scored once by the fold model that did "
                  f"not train on it; mean ± std over folds.{share}")


# The paired tests and pooled-AUC differences, each raw p-value followed by its Holm-adjusted one.
COMPARISON_TEST_COLUMNS = [c for column in TEST_COLUMNS
                           for c in ([column, f"{column}_holm"] if column.endswith("pvalue") else [column])]
COMPARISON_AUC_COLUMNS = [c for column in AUC_COLUMNS
                          for c in ([column, f"{column}_holm"] if column == "p_value" else [column])]
DIFFERENCE_COLUMNS = ["model_a", "model_b", "fold", "a", "b", "difference"]


@dataclass
class Comparison:
    """Each other model (model_a) against the best on validation (model_b), or every pair when no
    model has validation figures; differences are a − b, p-values raw and Holm-adjusted."""

    tests: pd.DataFrame  # one row per comparison: the paired tests over folds
    fold_differences: pd.DataFrame  # model_a, model_b, fold, a, b, difference
    auc_differences: pd.DataFrame  # one row per comparison: pooled OOF AUC difference with CI and p
    notes: list[str]
    best: str | None = None  # the model chosen on validation; None: none could be, every pair compared
    selection: str = ""  # why `best` was chosen, or why none was
    validation: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["model", "n_folds_validation", *VALIDATION_COLUMNS]))  # best first


def compare_models(results: dict[str, ModelResults], metric: str = "test_auc", method: str = "delong",
                   confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Each other model against the best on validation (every pair, in table order, when no model has
    validation figures): paired tests on shared folds and the interval of the pooled AUC difference,
    with Holm-adjusted p-values across the comparisons, one adjustment per kind of test."""
    validation = validation_table(results)
    ranking = validation_ranking(validation)
    best, selection = choose_best(validation)
    if best is None:
        pairs = list(itertools.combinations(results, 2))
    else:
        pairs = [(other, best) for other in ranking if other != best]
    tests, differences, aucs, notes = [], [], [], []
    test_notes: dict[tuple[str, str], str] = {}
    if len(results) < 2:
        only = ", ".join(results) or "none"
        notes.append(f"Only one model ({only}): no paired comparison and no test; "
                     "a test needs two models cross-validated on the same folds.")
    for a, b in pairs:
        try:
            test = paired_tests(results[a].fold_metrics, results[b].fold_metrics, metric, (a, b))
        except RbpError as exc:
            notes.append(f"{a} vs {b}: {exc}")
            continue
        tests.append(test.as_row())
        differences.append(test.differences.assign(model_a=a, model_b=b))
        if test.note:
            test_notes[(a, b)] = test.note
        if results[a].oof is None or results[b].oof is None:
            notes.append(f"{a} vs {b}: no out-of-fold predictions logged, no CI for the pooled AUC")
            continue
        try:
            aucs.append(auc_difference_ci(results[a].oof, results[b].oof, method, confidence,
                                          seed=seed, names=(a, b)).as_row())
        except RbpError as exc:
            notes.append(f"{a} vs {b}: {exc}")
    if len(test_notes) > 1 and len(set(test_notes.values())) == 1:  # said once, not once per comparison
        notes.insert(0, f"Every comparison: {next(iter(test_notes.values()))}")
    else:
        notes[:0] = [f"{a} vs {b}: {note}" for (a, b), note in test_notes.items()]
    tests = pd.DataFrame(tests, columns=TEST_COLUMNS)
    aucs = pd.DataFrame(aucs, columns=AUC_COLUMNS)
    for frame, column in ((tests, "t_pvalue"), (tests, "wilcoxon_pvalue"), (aucs, "p_value")):
        frame[f"{column}_holm"] = holm(frame[column]) if len(frame) else pd.Series(dtype=float)
    ranked = validation.set_index("model").loc[ranking].reset_index()
    return Comparison(
        tests[COMPARISON_TEST_COLUMNS],
        pd.concat(differences, ignore_index=True)[DIFFERENCE_COLUMNS] if differences
        else pd.DataFrame(columns=DIFFERENCE_COLUMNS),
        aucs[COMPARISON_AUC_COLUMNS],
        notes,
        best,
        selection,
        ranked,
    )


