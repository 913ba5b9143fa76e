"""Compare the models of a pipeline run: the summary table over folds, the best model chosen on
validation, each other model against it (paired tests over folds and the pooled-AUC interval, with
Holm-adjusted p-values), and logging them to the pipeline run.

The best is chosen on the validation AUC of each fold's chosen epoch, never on test figures: a model
picked for its test score would carry its lucky folds into the comparison that is meant to judge it.
When no model logged a validation AUC, none is chosen and every pair is compared instead.

Reading MLflow is `rbp.runs`; the statistics are `rbp.stats`; the figures `rbp.plots.compare`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
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
from rbp.stats import AUC_COLUMNS, TEST_COLUMNS, auc_difference_ci, holm, paired_tests

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
VALIDATION_KEY = "best_val_auc"  # per fold: the validation ROC AUC of the chosen epoch or setting
VALIDATION_COLUMNS = [f"mean_{VALIDATION_KEY}", f"std_{VALIDATION_KEY}"]
VALIDATION_LABEL = "validation ROC AUC"
CHOSEN_BY = "the highest mean validation ROC AUC of the chosen epochs (best_val_auc) over folds"
ALPHA = 0.05  # the level a Holm-adjusted p-value is read against in the verdict


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


def _validation_cells(table: pd.DataFrame, digits: int) -> list[str]:
    if VALIDATION_COLUMNS[0] not in table:
        return [""] * len(table)
    return ["" if pd.isna(mean) else format_mean_std(mean, None if pd.isna(std) else std, digits)
            for mean, std in zip(table[VALIDATION_COLUMNS[0]], table[VALIDATION_COLUMNS[1]], strict=True)]


def format_table(table: pd.DataFrame, digits: int = 4, metrics=BINARY) -> pd.DataFrame:
    """The summary table for reading: model, source, folds, the validation ROC AUC the best is chosen
    on, then `mean ± std` per test metric."""
    formatted = format_summary(table.drop(columns=VALIDATION_COLUMNS, errors="ignore"), digits, metrics)
    formatted.insert(list(formatted.columns).index("folds") + 1, VALIDATION_LABEL, _validation_cells(table, digits))
    return formatted[["source", *[c for c in formatted.columns if c != "source"]]]


def dnabert_style_table(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame | None:
    """The measured models in DNABERT's own metrics (macro F1, precision and recall beside accuracy,
    MCC, ROC AUC and AUPRC), to read a DNABERT run against DNABERT's published figures; None when no
    DNABERT model is among them."""
    measured = table[table.source == "measured"]
    if not measured.model.str.startswith("DNABERT").any():
        return None
    return format_table(measured, digits, DNABERT_STYLE).drop(columns=["source", VALIDATION_LABEL])


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


def format_p(p: float) -> str:
    """A p-value for reading: `< 1e-10` below that, scientific below 0.001, else three decimals."""
    if pd.isna(p):
        return "–"
    if p < 1e-10:
        return "< 1e-10"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


@dataclass
class Verdict:
    sentence: str  # the best on validation, and how each other model stands against it
    table: pd.DataFrame  # model, folds, validation AUC, headline test metrics; best first
    metrics: dict[str, float]  # headline figures for the pipeline run
    best: str | None = None  # the model chosen on validation, None when none could be
    selection: str = ""  # why


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _method_name(auc_differences: pd.DataFrame) -> str:
    return "DeLong" if (auc_differences.method == "delong").all() else "bootstrap"


def _against_best(comparison: Comparison) -> pd.DataFrame:
    """The pooled-AUC rows of the comparison, one per other model, keyed by that model."""
    if comparison.best is None:
        return pd.DataFrame(columns=COMPARISON_AUC_COLUMNS).set_index("model_a")
    rows = comparison.auc_differences
    return rows[rows.model_b == comparison.best].set_index("model_a")


def _standing(row) -> str:
    """Where one model stands against the best: worse, higher, or not told apart (Holm-adjusted)."""
    if row.p_value_holm < ALPHA:
        return "worse" if row.difference < 0 else "higher"
    return "apart" if row.ci_low <= 0 <= row.ci_high else "before Holm only"


def _others_sentence(comparison: Comparison, others: list[str]) -> str:
    """One sentence on every model but the best, grouped by how it stands against the best."""
    rows = _against_best(comparison)
    groups = {"worse": [], "apart": [], "before Holm only": [], "higher": [], "missing": []}
    for model in others:
        if model not in rows.index:
            groups["missing"].append(model)
            continue
        d = rows.loc[model]
        interval = f"{d.confidence:.0%} CI {d.ci_low:+.3f} to {d.ci_high:+.3f}"
        p = f"p {format_p(d.p_value_holm)} after Holm"
        detail = {"worse": f"{d.difference:+.3f}, {p}", "higher": f"{d.difference:+.3f}, {p}",
                  "apart": f"{d.difference:+.3f}, {interval}",
                  "before Holm only": f"{d.difference:+.3f}, {interval}, {p}"}[_standing(d)]
        groups[_standing(d)].append(f"{model} ({detail})")

    def verb(names, singular, plural):
        return f"{_listing(names)} {singular if len(names) == 1 else plural}"

    clauses = []
    if groups["worse"]:
        clauses.append(verb(groups["worse"], "is worse", "are worse"))
    if groups["apart"]:
        clauses.append(verb(groups["apart"], "cannot be told apart from it (the interval holds zero)",
                            "cannot be told apart from it (their intervals hold zero)"))
    if groups["before Holm only"]:
        clauses.append(verb(groups["before Holm only"], "differs from it only before the Holm correction",
                            "differ from it only before the Holm correction"))
    if groups["higher"]:
        clauses.append(verb(groups["higher"], "scores significantly higher than it although validation did not "
                            "choose it", "score significantly higher than it although validation did not choose "
                            "them"))
    if groups["missing"]:
        clauses.append(verb(groups["missing"], "could not be compared with it (see the notes)",
                            "could not be compared with it (see the notes)"))
    tested = int(comparison.auc_differences.p_value.notna().sum())
    method = _method_name(comparison.auc_differences) if tested else "DeLong"
    return (f"Against it, on pooled out-of-fold ROC AUC ({method}, p-values Holm-adjusted over {tested} "
            f"comparison{'s' if tested != 1 else ''}, intervals unadjusted): {'; '.join(clauses)}.")


def _pairs_sentence(comparison: Comparison) -> str:
    """Without a best: which pairs differ on pooled AUC after the Holm correction."""
    d = comparison.auc_differences
    differ = d[d.p_value_holm < ALPHA]
    if d.empty:
        return "No pair could be compared on pooled out-of-fold ROC AUC (see the notes)."
    if differ.empty:
        return (f"No pair differs on pooled out-of-fold ROC AUC after the Holm correction over {len(d)} "
                "pairs.")
    named = [f"{(r.model_a if r.difference > 0 else r.model_b)} over {(r.model_b if r.difference > 0 else r.model_a)}"
             f" ({abs(r.difference):+.3f}, p {format_p(r.p_value_holm)} after Holm)" for r in differ.itertuples()]
    return (f"Pairs that differ on pooled out-of-fold ROC AUC ({_method_name(d)}, Holm-adjusted over {len(d)} "
            f"pairs): {_listing(named)}; the other pairs do not differ after the correction.")


def verdict(table: pd.DataFrame, comparison: Comparison, ceiling: float | None = None) -> Verdict:
    """The comparison in two sentences and one small table: the best model on validation, with its
    validation and test ROC AUC, then each other model against it by the Holm-adjusted p-value and the
    interval of their pooled out-of-fold AUC difference. The table lists the models best first. The
    first sentence's head, up to its first '.' or ':', is the headline the pipeline driver shows.

    Metrics: each model's headline means and stds (`<slug>.mean_test_auc`, …, and
    `<slug>.mean_best_val_auc`), each other model against the best (`<slug>.vs_best.difference`,
    `.ci_low`, `.ci_high`, `.p_value`, `.p_holm`; model − best), and `difference.*`: the best minus the
    runner-up on validation (the pair the old two-model verdict reported)."""
    measured = table[table.source == "measured"].reset_index(drop=True)
    if VALIDATION_COLUMNS[0] not in measured:
        measured = measured.assign(**{column: math.nan for column in VALIDATION_COLUMNS})
    measured = measured.sort_values(VALIDATION_COLUMNS[0], ascending=False, na_position="last", kind="stable",
                                    ignore_index=True)
    best = comparison.best if comparison.best in set(measured.model) else None
    shown = _verdict_table(measured, comparison if best else None)
    metrics = {f"{_slug(row['model'])}.{stat}_{key}": row[f"{stat}_{key}"]
               for _, row in measured.iterrows() for key in (*HEADLINE, VALIDATION_KEY) for stat in ("mean", "std")}
    metrics = {key: float(value) for key, value in metrics.items() if pd.notna(value)}
    if ceiling is not None:
        metrics["ceiling_auc"] = ceiling
    if measured.empty:
        return Verdict("No model finished: nothing to compare.", shown, metrics, None, comparison.selection)

    def lead(row) -> str:
        auc = format_mean_std(row.mean_test_auc, row.std_test_auc, 3)
        text = f"test ROC AUC {auc} over {int(row.n_folds)} folds"
        if ceiling is not None:
            text += f", {ceiling - row.mean_test_auc:.3f} below the ceiling of {ceiling:.3f} (the planted truth)"
        return text

    def validation(row) -> str:
        return f"mean validation ROC AUC {row[VALIDATION_COLUMNS[0]]:.3f}"

    if len(measured) < 2:
        row = measured.iloc[0]
        figures = [validation(row)] if pd.notna(row[VALIDATION_COLUMNS[0]]) else []
        return Verdict(f"One model only. {row.model}: {'; '.join([*figures, lead(row)])}.", shown, metrics,
                       best, comparison.selection)
    if best is None:
        scores = "; ".join(f"{row.model} {format_mean_std(row.mean_test_auc, row.std_test_auc, 3)}"
                           for row in measured.itertuples())
        sentence = (f"No best model: no model logged a validation ROC AUC, so none is chosen (a choice on test "
                    f"folds would be biased) and every pair is compared. Test ROC AUC over folds: {scores}. "
                    f"{_pairs_sentence(comparison)}")
        return Verdict(sentence, shown, metrics, None, comparison.selection)
    first = measured.set_index("model").loc[best]
    others = [model for model in measured.model if model != best]
    sentence = (f"{best} is the best on validation: {validation(first)} over "
                f"{_validation_folds(comparison, best)} folds; {lead(first)}. "
                f"{_others_sentence(comparison, others)}")
    against = _against_best(comparison)
    for model, d in against.iterrows():
        metrics.update({f"{_slug(model)}.vs_best.{key}": float(d[column]) for key, column in
                        (("difference", "difference"), ("ci_low", "ci_low"), ("ci_high", "ci_high"),
                         ("p_value", "p_value"), ("p_holm", "p_value_holm"))})
    eligible = comparison.validation.dropna(subset=[VALIDATION_COLUMNS[0]]).model  # best first
    runner_up = next((model for model in eligible if model != best), None)
    if runner_up in against.index:
        d = against.loc[runner_up]  # runner-up − best: the sign turns for best − runner-up
        metrics.update({"difference.test_auc": -float(d.difference), "difference.ci_low": -float(d.ci_high),
                        "difference.ci_high": -float(d.ci_low), "difference.p_value": float(d.p_value),
                        "difference.p_holm": float(d.p_value_holm)})
    return Verdict(sentence, shown, metrics, best, comparison.selection)


def _validation_folds(comparison: Comparison, model: str) -> int:
    return int(comparison.validation.set_index("model").loc[model, "n_folds_validation"])


VS_BEST_LABEL = "pooled ROC AUC − best (Holm p)"


def _verdict_table(measured: pd.DataFrame, comparison: Comparison | None) -> pd.DataFrame:
    """Folds, validation ROC AUC, the headline test metrics and, with a best, each model's pooled-AUC
    difference to it with the Holm-adjusted p-value."""
    shown = format_summary(measured[["model", "n_folds", *summary_columns()]])
    shown.insert(1, VALIDATION_LABEL, _validation_cells(measured, 4))
    columns = ["folds", VALIDATION_LABEL, *[metric(key).label for key in HEADLINE]]
    if comparison is not None:
        rows = _against_best(comparison)
        shown[VS_BEST_LABEL] = ["best" if model == comparison.best else
                                f"{rows.loc[model, 'difference']:+.3f} (p {format_p(rows.loc[model, 'p_value_holm'])})"
                                if model in rows.index else "–" for model in shown.index]
        columns.append(VS_BEST_LABEL)
    return shown[columns]


def _holm_label(label: str) -> str:
    return f"{label} (Holm)"


def format_tests(comparison: Comparison) -> pd.DataFrame:
    """The paired tests over folds, for reading: raw and Holm-adjusted p-values side by side."""
    t = comparison.tests
    a, b, difference = (("model", "best on validation", "mean difference (model − best)") if comparison.best
                        else ("model a", "model b", "mean difference (a − b)"))
    return pd.DataFrame({
        a: t.model_a, b: t.model_b, "folds": t.n_folds,
        difference: t.mean_difference.map(lambda x: f"{x:+.4f}"),
        "std of the difference": t.std_difference.map(lambda x: "–" if pd.isna(x) else f"{x:.4f}"),
        "paired t-test p": t.t_pvalue.map(format_p), _holm_label("paired t-test p"): t.t_pvalue_holm.map(format_p),
        "Wilcoxon p": t.wilcoxon_pvalue.map(format_p), _holm_label("Wilcoxon p"): t.wilcoxon_pvalue_holm.map(format_p),
    }).set_index([a, b])


def format_auc_differences(comparison: Comparison) -> pd.DataFrame:
    """The pooled out-of-fold AUC differences with their (unadjusted) intervals, and raw and
    Holm-adjusted p-values, for reading."""
    d = comparison.auc_differences
    a, b = ("model", "best on validation") if comparison.best else ("model a", "model b")
    p = f"{_method_name(d)} p" if len(d) else "DeLong p"
    return pd.DataFrame({
        a: d.model_a, b: d.model_b,
        "sequences": [f"{n} ({p} +, {m} −)" for n, p, m in zip(d.n, d.n_positives, d.n_negatives, strict=True)],
        f"ROC AUC ({a})": d.auc_a.map(lambda x: f"{x:.4f}"), f"ROC AUC ({b})": d.auc_b.map(lambda x: f"{x:.4f}"),
        "difference": d.difference.map(lambda x: f"{x:+.4f}"),
        "interval (unadjusted)": [f"{c:.0%} CI {lo:+.4f} to {hi:+.4f}" for c, lo, hi in
                                  zip(d.confidence, d.ci_low, d.ci_high, strict=True)],
        p: d.p_value.map(format_p), _holm_label(p): d.p_value_holm.map(format_p),
    }).set_index([a, b])


def verdict_json(verdict: Verdict) -> str:
    return json.dumps({"sentence": verdict.sentence, "best": verdict.best, "chosen_by": CHOSEN_BY,
                       "selection": verdict.selection, "table": _records(verdict.table.reset_index()),
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
    text(comparison.validation.to_csv(index=False), "validation.csv")
    text(comparison.tests.to_csv(index=False), "paired_tests.csv")
    text(comparison.fold_differences.to_csv(index=False), "fold_differences.csv")
    text(comparison.auc_differences.to_csv(index=False), "auc_difference.csv")
    summary = {
        "best": comparison.best,
        "chosen_by": CHOSEN_BY,
        "selection": comparison.selection,
        "compared": "each model against the best" if comparison.best else "every pair",
        "p_adjustment": "Holm, separately for the t-test, Wilcoxon and pooled-AUC p-values; intervals unadjusted",
        "validation": _records(comparison.validation),
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
