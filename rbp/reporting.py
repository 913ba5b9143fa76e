"""The comparison in words and tables for reading: the verdict (the best model on validation and how
each other model stands against it, in two sentences and one small table), the formatted summary
and test tables, and `verdict.json`, which the pipeline driver reads.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from rbp.compare import (
    CHOSEN_BY,
    COMPARISON_AUC_COLUMNS,
    VALIDATION_COLUMNS,
    VALIDATION_KEY,
    VALIDATION_LABEL,
    Comparison,
)
from rbp.config import slug
from rbp.metrics import BINARY, DNABERT_STYLE, format_mean_std, format_summary, metric, summary_columns

HEADLINE = ("test_auc", "test_auprc", "test_acc")  # the metrics of the verdict table


SYNTHETIC_BANNER = (
    "**SYNTHETIC DATA.** These models were trained and tested on the built-in synthetic set, whose "
    "answer is known: its ceiling row is the best ROC AUC any model can reach on it. The figures show "
    "the pipeline working and how close each model gets to that ceiling; they say nothing about real "
    "binding sites.")


VERDICT_FILE = "verdict.json"  # in the run folder and under compare/: read by the pipeline driver


ALPHA = 0.05  # the level a Holm-adjusted p-value is read against in the verdict


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


def _others_sentence(comparison: Comparison, others: list[str], protocol: str = "cv") -> str:
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
    return (f"Against it, on {_pooled(protocol)} ({method}, p-values Holm-adjusted over {tested} "
            f"comparison{'s' if tested != 1 else ''}, intervals unadjusted): {'; '.join(clauses)}.")


def _pooled(protocol: str) -> str:
    """What the pairwise comparison is made on: the fixed test set, or every sequence's out-of-fold score."""
    return "the test set's ROC AUC" if protocol == "fixed_test" else "pooled out-of-fold ROC AUC"


def _over_folds(n: int) -> str:
    return "" if n == 1 else f" over {n} folds"


def _pairs_sentence(comparison: Comparison, protocol: str = "cv") -> str:
    """Without a best: which pairs differ on pooled AUC after the Holm correction."""
    d = comparison.auc_differences
    differ = d[d.p_value_holm < ALPHA]
    if d.empty:
        return f"No pair could be compared on {_pooled(protocol)} (see the notes)."
    if differ.empty:
        return (f"No pair differs on {_pooled(protocol)} after the Holm correction over {len(d)} "
                "pairs.")
    named = [f"{(r.model_a if r.difference > 0 else r.model_b)} over {(r.model_b if r.difference > 0 else r.model_a)}"
             f" ({abs(r.difference):+.3f}, p {format_p(r.p_value_holm)} after Holm)" for r in differ.itertuples()]
    return (f"Pairs that differ on {_pooled(protocol)} ({_method_name(d)}, Holm-adjusted over {len(d)} "
            f"pairs): {_listing(named)}; the other pairs do not differ after the correction.")


def verdict(table: pd.DataFrame, comparison: Comparison, ceiling: float | None = None,
            protocol: tuple[str, str] | None = None) -> Verdict:
    """The comparison in two sentences and one small table: the best model on validation, with its
    validation and test ROC AUC, then each other model against it by the Holm-adjusted p-value and the
    interval of their pooled out-of-fold AUC difference. The table lists the models best first. The
    first sentence's head, up to its first '.' or ':', is the headline the pipeline driver shows. With
    `protocol` (its kind and its sentence, `rbp.compare.test_protocol`), the verdict ends by saying
    where the test figures come from.

    Metrics: each model's headline means and stds (`<slug>.mean_test_auc`, …, and
    `<slug>.mean_best_val_auc`), each other model against the best (`<slug>.vs_best.difference`,
    `.ci_low`, `.ci_high`, `.p_value`, `.p_holm`; model − best), and `difference.*`: the best minus the
    runner-up on validation (the pair the old two-model verdict reported)."""
    kind, said = protocol or ("cv", "")
    verdict = _verdict(table, comparison, ceiling, kind)
    if said:
        verdict.sentence = f"{verdict.sentence} {said}"
    return verdict


def _verdict(table: pd.DataFrame, comparison: Comparison, ceiling: float | None, protocol: str) -> Verdict:
    measured = table[table.source == "measured"].reset_index(drop=True)
    if VALIDATION_COLUMNS[0] not in measured:
        measured = measured.assign(**{column: math.nan for column in VALIDATION_COLUMNS})
    measured = measured.sort_values(VALIDATION_COLUMNS[0], ascending=False, na_position="last", kind="stable",
                                    ignore_index=True)
    best = comparison.best if comparison.best in set(measured.model) else None
    shown = _verdict_table(measured, comparison if best else None)
    metrics = _headline_metrics(measured, ceiling)
    if measured.empty:
        return Verdict("No model finished: nothing to compare.", shown, metrics, None, comparison.selection)
    if len(measured) < 2:
        row = measured.iloc[0]
        figures = [_validation_figure(row)] if pd.notna(row[VALIDATION_COLUMNS[0]]) else []
        return Verdict(f"One model only. {row.model}: {'; '.join([*figures, _test_figure(row, ceiling)])}.", shown,
                       metrics, best, comparison.selection)
    if best is None:
        scores = "; ".join(f"{row.model} {format_mean_std(row.mean_test_auc, row.std_test_auc, 3)}"
                           for row in measured.itertuples())
        sentence = (f"No best model: no model logged a validation ROC AUC, so none is chosen (a choice on test "
                    f"folds would be biased) and every pair is compared. Test ROC AUC: {scores}. "
                    f"{_pairs_sentence(comparison, protocol)}")
        return Verdict(sentence, shown, metrics, None, comparison.selection)
    first = measured.set_index("model").loc[best]
    others = [model for model in measured.model if model != best]
    sentence = (f"{best} is the best on validation: {_validation_figure(first)}"
                f"{_over_folds(_validation_folds(comparison, best))}; {_test_figure(first, ceiling)}. "
                f"{_others_sentence(comparison, others, protocol)}")
    metrics.update(_against_best_metrics(comparison))
    return Verdict(sentence, shown, metrics, best, comparison.selection)


def _headline_metrics(measured: pd.DataFrame, ceiling: float | None) -> dict[str, float]:
    """Each model's headline means and stds, and the ceiling of a synthetic set."""
    metrics = {f"{slug(row['model'], '_')}.{stat}_{key}": row[f"{stat}_{key}"]
               for _, row in measured.iterrows() for key in (*HEADLINE, VALIDATION_KEY) for stat in ("mean", "std")}
    metrics = {key: float(value) for key, value in metrics.items() if pd.notna(value)}
    if ceiling is not None:
        metrics["ceiling_auc"] = ceiling
    return metrics


def _against_best_metrics(comparison: Comparison) -> dict[str, float]:
    """Each other model against the best (model − best), and the best minus the runner-up on validation."""
    metrics = {}
    against = _against_best(comparison)
    for model, d in against.iterrows():
        metrics.update({f"{slug(model, '_')}.vs_best.{key}": float(d[column]) for key, column in
                        (("difference", "difference"), ("ci_low", "ci_low"), ("ci_high", "ci_high"),
                         ("p_value", "p_value"), ("p_holm", "p_value_holm"))})
    eligible = comparison.validation.dropna(subset=[VALIDATION_COLUMNS[0]]).model  # best first
    runner_up = next((model for model in eligible if model != comparison.best), None)
    if runner_up in against.index:
        d = against.loc[runner_up]  # runner-up − best: the sign turns for best − runner-up
        metrics.update({"difference.test_auc": -float(d.difference), "difference.ci_low": -float(d.ci_high),
                        "difference.ci_high": -float(d.ci_low), "difference.p_value": float(d.p_value),
                        "difference.p_holm": float(d.p_value_holm)})
    return metrics


def _test_figure(row, ceiling: float | None) -> str:
    auc = format_mean_std(row.mean_test_auc, row.std_test_auc, 3)
    text = f"test ROC AUC {auc}{_over_folds(int(row.n_folds))}"
    if ceiling is not None:
        text += f", {ceiling - row.mean_test_auc:.3f} below the ceiling of {ceiling:.3f} (the planted truth)"
    return text


def _validation_figure(row) -> str:
    mean = "" if int(row.n_folds) == 1 else "mean "
    return f"{mean}validation ROC AUC {row[VALIDATION_COLUMNS[0]]:.3f}"


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
                       "selection": verdict.selection, "table": json_records(verdict.table.reset_index()),
                       "metrics": verdict.metrics}, indent=2) + "\n"


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN becomes null)."""
    return json.loads(frame.to_json(orient="records"))
