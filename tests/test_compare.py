"""rbp.compare on a small fake MLflow store and on made-up results: the summary table, the best model chosen on
validation, each other model against it with Holm-adjusted p-values (every pair when none can be chosen), the
verdict, the figures for five models, logging, notebook."""

import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rbp import compare, plots, reporting, stats, tracking
from rbp.config import slug
from rbp.metrics import METRICS
from rbp.records import pipeline_run_of
from rbp.tracking import find_cv_runs, load_results
from tests.conftest import ROOT
from tests.fake_store import EXPERIMENT, FOLD_AUC, FakeStore, artifacts, fold_values


@pytest.fixture
def store(mlflow_store):
    return FakeStore()


@pytest.fixture(autouse=True)
def _close_figures():
    """pyplot keeps every figure it made; the figure tests make many."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_summary_table_is_mean_and_std_over_folds(store):
    pipeline_id, _ = store.pipeline()
    results = load_results(find_cv_runs(pipeline_run_id=pipeline_id))
    table = compare.results_table(results)
    assert table.model.tolist() == ["DNABERT (pretrained)", "LSTM"]
    for label, family in [("DNABERT (pretrained)", "dnabert"), ("LSTM", "lstm")]:
        row = table.set_index("model").loc[label]
        assert row.n_folds == 5 and row.source == "measured"
        for m in METRICS:
            values = fold_values(family, m.test_key)
            assert row[f"mean_{m.test_key}"] == pytest.approx(values.mean())
            assert row[f"std_{m.test_key}"] == pytest.approx(values.std(ddof=1))

    reference = compare.reference_rows().set_index("model")
    assert reference.loc["LSTM (reported)", ["mean_test_acc", "mean_test_auc"]].tolist() == [0.8952, 0.9411]
    assert reference.loc["DNABERT-3 (pretrained, reported)", "mean_test_auc"] == 0.9692
    assert reference.source.str.startswith("reported").all() and reference.n_folds.isna().all()
    shown = reporting.format_table(pd.concat([table, compare.reference_rows()], ignore_index=True))
    assert shown.loc["LSTM", "ROC AUC"] == f"{np.mean(FOLD_AUC['lstm']):.4f} ± " \
                                          f"{np.std(FOLD_AUC['lstm'], ddof=1):.4f}"
    assert shown.loc["LSTM (reported)", "accuracy"] == "0.8952" and shown.loc["LSTM (reported)", "MCC"] == ""


def test_comparison_is_logged_to_the_pipeline_run(store):
    pipeline_id, cv_ids = store.pipeline()
    cv_runs = find_cv_runs(pipeline_run_id=pipeline_id)
    results = load_results(cv_runs)
    comparison = compare.compare_models(results)
    assert comparison.tests[["model_a", "model_b", "n_folds"]].values.tolist() == [
        ["DNABERT (pretrained)", "LSTM", 5]]
    auc = comparison.auc_differences.iloc[0]
    assert auc.auc_a == pytest.approx(roc_auc_score(results["DNABERT (pretrained)"].oof.label,
                                                    results["DNABERT (pretrained)"].oof.probability))
    assert auc.ci_low < auc.difference < auc.ci_high and auc.method == "delong"
    assert len(comparison.fold_differences) == 5

    table = compare.results_table(results)
    figures = plots.comparison_figures(results)
    logged = tracking.log_comparison(pipeline_id, table, comparison, figures, cv_runs)
    files = artifacts(pipeline_id)
    assert set(logged) <= set(files)
    assert {f"compare/figures/{name}.png" for name in
            ("roc_curves", "pr_curves", "fold_auc", "val_auc_per_epoch")} <= set(files)
    summary = json.loads(mlflow.artifacts.load_text(f"runs:/{pipeline_id}/compare/summary.json"))
    assert summary["cv_runs"] == {"DNABERT (pretrained)": cv_ids["dnabert"], "LSTM": cv_ids["lstm"]}
    assert summary["paired_tests"][0]["t_pvalue"] == pytest.approx(comparison.tests.t_pvalue[0])
    csv = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{pipeline_id}/compare/summary.csv"))
    assert csv.mean_test_auc.tolist() == pytest.approx([np.mean(FOLD_AUC["dnabert"]), np.mean(FOLD_AUC["lstm"])])


def test_one_model_has_no_test_and_says_so(store):
    pipeline_id, _ = store.pipeline(("lstm",))
    results = load_results(find_cv_runs(pipeline_run_id=pipeline_id))
    comparison = compare.compare_models(results)
    assert comparison.tests.empty and comparison.auc_differences.empty
    assert comparison.notes and "Only one model (LSTM): no paired comparison" in comparison.notes[0]
    assert comparison.best is None and comparison.selection.startswith("One model only")
    verdict = reporting.verdict(compare.results_table(results), comparison)
    assert verdict.sentence.startswith("One model only. LSTM: test ROC AUC 0.908 ± 0.019 over 5 folds")
    figures = plots.comparison_figures(results)
    table = compare.results_table(results)
    tracking.log_comparison(pipeline_id, table, comparison, figures)
    assert "compare/figures/fold_auc.png" in artifacts(pipeline_id)


def test_models_on_different_folds_are_not_paired(store):
    pipeline_id, _ = store.pipeline(("lstm",))
    other_id, _ = store.pipeline(("dnabert",), folds_sha="0" * 64)
    cv_runs = (find_cv_runs(pipeline_run_id=pipeline_id)
               + find_cv_runs(pipeline_run_id=other_id))
    assert pipeline_run_of(cv_runs) is None
    comparison = compare.compare_models(load_results(cv_runs))
    assert comparison.tests.empty and "different folds" in comparison.notes[0]


@pytest.mark.slow
def test_the_notebook_logs_to_the_pipeline_run_and_exports_html(store, tmp_path):
    import papermill

    from rbp.pipeline import log_report

    pipeline_id, _ = store.pipeline()
    output = tmp_path / "04_compare.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "04_compare.ipynb"), str(output),
                               parameters=dict(compare_run_id=pipeline_id, dataset=EXPERIMENT),
                               kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    files = artifacts(pipeline_id)
    assert {"compare/summary.csv", "compare/summary.json", "compare/paired_tests.csv",
            "compare/figures/roc_curves.png", "compare/figures/val_auc_per_epoch.png"} <= set(files)

    html = log_report(output, pipeline_id)
    text = html.read_text()
    assert html == tmp_path / "04_compare.html" and "Paired comparison" in text and "<img" in text
    assert "reports/04_compare.html" in artifacts(pipeline_id)



def _models(spec: dict[str, tuple[float, float | None]], n: int = 2000, seed: int = 0, epochs: dict | None = None):
    """Results of models named in `spec`, five folds each, with pooled predictions: name -> (separation of
    positives' scores, validation AUC of the chosen epochs or None for a model without validation).
    `epochs`: name -> epochs of per-epoch history (0: none logged); two when not given."""
    from rbp.records import CVRun, ModelResults

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    out = {}
    for name, (separation, validation) in spec.items():
        noise = rng.normal(size=n)
        oof = pd.DataFrame({"id": [f"s{i}" for i in range(n)], "label": labels,
                            "probability": 1 / (1 + np.exp(-(separation * labels + noise))),
                            "fold": np.arange(n) % 5 + 1})
        folds = pd.DataFrame([{"fold": f, "best_val_auc": np.nan if validation is None else validation + 0.001 * f,
                               **{m.test_key: roc_auc_score(part.label, part.probability) for m in METRICS}}
                              for f, part in oof.groupby("fold")])
        history = pd.DataFrame([{"fold": f, "epoch": e, "val_auc": 0.8 + 0.05 * e}
                                for f in range(1, 6) for e in range(1, (epochs or {}).get(name, 2) + 1)],
                               columns=["fold", "epoch", "val_auc"])
        run = CVRun(name, name, "0", "FINISHED", {"model_family": name})
        out[name] = ModelResults(name, run, folds, oof, history)
    return out


def _two_models(separation_b: float, seed: int = 0):
    """A (clearly separating) and B; A is the better on validation."""
    return _models({"A": (1.5, 0.95), "B": (separation_b, 0.90)}, seed=seed)


def test_the_verdict_names_the_winner_when_the_interval_excludes_zero():
    results = _two_models(separation_b=0.6)
    table = compare.results_table(results)
    comparison = compare.compare_models(results)
    verdict = reporting.verdict(table, comparison, ceiling=0.9)
    assert comparison.best == "A" and verdict.best == "A"
    assert verdict.sentence.startswith("A is the best on validation: mean validation ROC AUC 0.953 over 5 folds; "
                                       "test ROC AUC ")
    assert re.split(r"[.:]", verdict.sentence, maxsplit=1)[0] == "A is the best on validation"  # the headline
    assert "over 5 folds" in verdict.sentence and "below the ceiling of 0.900" in verdict.sentence
    assert "Holm-adjusted over 1 comparison" in verdict.sentence and ": B (-0." in verdict.sentence
    assert verdict.sentence.endswith("after Holm) is worse.")
    assert verdict.table.index.tolist() == ["A", "B"] and list(verdict.table.columns) == [
        "folds", "validation ROC AUC", "ROC AUC", "AUPRC", "accuracy", "pooled ROC AUC − best (Holm p)"]
    assert verdict.table.loc["A", "pooled ROC AUC − best (Holm p)"] == "best"
    # difference.*: the best minus the runner-up on validation; b.vs_best.*: B minus the best
    assert verdict.metrics["difference.ci_low"] > 0 and verdict.metrics["ceiling_auc"] == 0.9
    assert verdict.metrics["difference.test_auc"] == pytest.approx(-verdict.metrics["b.vs_best.difference"])
    assert verdict.metrics["b.vs_best.p_holm"] == verdict.metrics["b.vs_best.p_value"]  # one comparison
    assert verdict.metrics["a.mean_test_auc"] == pytest.approx(table.mean_test_auc[0])
    assert verdict.metrics["a.mean_best_val_auc"] == pytest.approx(0.953)
    assert json.loads(reporting.verdict_json(verdict))["best"] == "A"


def test_the_verdict_says_when_two_models_cannot_be_told_apart():
    results = _two_models(separation_b=1.5, seed=3)
    verdict = reporting.verdict(compare.results_table(results), compare.compare_models(results))
    assert "B (" in verdict.sentence and "cannot be told apart from it (the interval holds zero)" in verdict.sentence
    low, high = verdict.metrics["difference.ci_low"], verdict.metrics["difference.ci_high"]
    assert low < 0 < high


def test_p_values_read_as_people_write_them():
    assert [reporting.format_p(p) for p in (1.9e-94, 2.3e-5, 0.0412, float("nan"))] == [
        "< 1e-10", "2.3e-05", "0.041", "–"]


def test_reference_rows_match_the_data():
    assert compare.reference_rows("synthetic", ceiling=0.91).model.tolist() == ["ceiling (planted truth)"]
    assert len(compare.reference_rows("PUM2")) == 2
    assert compare.reference_rows("hnrnpc").empty


def test_the_verdict_says_so_when_a_model_beats_the_one_chosen_on_validation():
    results = _models({"A": (1.5, 0.90), "B": (0.6, 0.95)})  # B chosen on validation, A far better on test
    verdict = reporting.verdict(compare.results_table(results), compare.compare_models(results))
    assert verdict.sentence.startswith("B is the best on validation")
    assert "A (+0." in verdict.sentence
    assert "scores significantly higher than it although validation did not choose it" in verdict.sentence
    assert verdict.metrics["difference.ci_high"] < 0 and verdict.metrics["a.vs_best.ci_low"] > 0


FOUR = {"LSTM": (0.8, 0.86), "CNN": (1.3, 0.94), "k-mer LR": (0.7, 0.84), "DNABERT (pretrained)": (1.6, 0.91)}


def test_the_best_is_chosen_on_validation_never_on_test():
    results = _models(FOUR)
    table = compare.results_table(results)
    assert table.set_index("model").mean_test_auc.idxmax() == "DNABERT (pretrained)"  # the best on test ...
    comparison = compare.compare_models(results)
    assert comparison.best == "CNN"  # ... is not the one chosen
    assert "CNN is the best on validation" in comparison.selection and "0.9430 over 5 folds" in comparison.selection
    assert comparison.validation.model.tolist() == ["CNN", "DNABERT (pretrained)", "LSTM", "k-mer LR"]
    for frame in (comparison.tests, comparison.auc_differences):  # the others against the best, by validation
        assert frame.model_a.tolist() == ["DNABERT (pretrained)", "LSTM", "k-mer LR"]
        assert set(frame.model_b) == {"CNN"}
    verdict = reporting.verdict(table, comparison)
    assert verdict.sentence.startswith("CNN is the best on validation") and verdict.best == "CNN"
    assert verdict.table.index.tolist() == ["CNN", "DNABERT (pretrained)", "LSTM", "k-mer LR"]
    assert "DNABERT (pretrained) (+0." in verdict.sentence and "score" in verdict.sentence  # honest about test
    assert "cnn.vs_best.difference" not in verdict.metrics
    assert verdict.metrics["dnabert_pretrained.vs_best.difference"] > 0
    # difference.*: CNN minus the runner-up on validation (DNABERT), not the best on test
    assert verdict.metrics["difference.test_auc"] == pytest.approx(
        -verdict.metrics["dnabert_pretrained.vs_best.difference"])
    shown = reporting.format_auc_differences(comparison)
    assert shown.index.names == ["model", "best on validation"]
    assert {"DeLong p", "DeLong p (Holm)", "interval (unadjusted)"} <= set(shown.columns)
    assert {"paired t-test p (Holm)", "Wilcoxon p (Holm)"} <= set(reporting.format_tests(comparison).columns)
    assert reporting.format_table(table).loc["CNN", "validation ROC AUC"] == "0.9430 ± 0.0016"


def test_a_model_without_validation_figures_is_compared_but_never_chosen():
    results = _models({**FOUR, "DNABERT (pretrained, parity (no selection))": (2.5, None)})
    comparison = compare.compare_models(results)
    assert comparison.best == "CNN" and "not eligible" in comparison.selection
    assert "DNABERT (pretrained, parity (no selection))" in comparison.selection
    assert comparison.auc_differences.model_a.tolist()[-1] == "DNABERT (pretrained, parity (no selection))"
    verdict = reporting.verdict(compare.results_table(results), comparison)
    assert verdict.table.index[-1] == "DNABERT (pretrained, parity (no selection))"
    assert verdict.table.iloc[-1]["validation ROC AUC"] == ""


def test_without_validation_figures_every_pair_is_compared_and_none_is_chosen():
    results = _models({name: (separation, None) for name, (separation, _) in FOUR.items()})
    comparison = compare.compare_models(results)
    assert comparison.best is None and comparison.selection.startswith("No model logged a validation ROC AUC")
    assert len(comparison.tests) == len(comparison.auc_differences) == 6  # every pair, in table order
    assert comparison.tests[["model_a", "model_b"]].values.tolist()[0] == ["LSTM", "CNN"]
    assert (comparison.auc_differences.p_value_holm >= comparison.auc_differences.p_value).all()
    verdict = reporting.verdict(compare.results_table(results), comparison)
    assert verdict.best is None and verdict.sentence.startswith("No best model: no model logged a validation")
    assert "Holm-adjusted over 6 pairs" in verdict.sentence
    assert verdict.table.index.tolist() == list(FOUR)  # table order: no ranking on test
    assert not any(key.startswith("difference.") or ".vs_best." in key for key in verdict.metrics)
    assert "auc_vs_best" not in plots.comparison_figures(results, comparison)
    assert reporting.format_tests(comparison).index.names == ["model a", "model b"]


FIVE = {**FOUR, "Ensemble": (1.55, 0.92)}


def test_five_models_make_four_holm_adjusted_comparisons_and_readable_figures():
    results = _models(FIVE, epochs={"k-mer LR": 1, "Ensemble": 0, "CNN": 6, "LSTM": 9})
    assert results["Ensemble"].history.empty
    comparison = compare.compare_models(results)
    assert comparison.best == "CNN" and len(comparison.tests) == len(comparison.auc_differences) == 4
    for frame, column in ((comparison.tests, "t_pvalue"), (comparison.tests, "wilcoxon_pvalue"),
                          (comparison.auc_differences, "p_value")):
        assert (frame[f"{column}_holm"] >= frame[column] - 1e-15).all() and (frame[f"{column}_holm"] <= 1).all()
        assert frame[f"{column}_holm"].tolist() == pytest.approx(stats.holm(frame[column]).tolist())
    d = comparison.auc_differences
    assert d.p_value_holm.min() == pytest.approx(min(1, 4 * d.p_value.min()))  # the smallest p counts 4 tests
    verdict = reporting.verdict(compare.results_table(results), comparison)
    assert "Holm-adjusted over 4 comparisons" in verdict.sentence
    assert all(f"{slug(m, '_')}.vs_best.p_holm" in verdict.metrics for m in FIVE if m != "CNN")

    figures = plots.comparison_figures(results, comparison)
    assert set(figures) == {"roc_curves", "pr_curves", "fold_auc", "val_auc_per_epoch", "auc_vs_best"}
    history = figures["val_auc_per_epoch"]
    drawn = [ax.get_title() for ax in history.axes if ax.axison]
    assert drawn == ["LSTM", "CNN", "DNABERT (pretrained)"]  # one epoch or none: named, not drawn
    assert "k-mer LR (one epoch)" in history.get_supxlabel() and "Ensemble (no per-epoch history)" in \
        history.get_supxlabel()
    roc = figures["roc_curves"].axes[0]
    assert len(roc.get_legend().get_texts()) == 5
    assert len({tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
                for line in roc.get_lines()[:5]}) == 5  # five distinct colours
    fold_axis = figures["fold_auc"].axes[0]
    assert [t.get_text().replace("\n", " ") for t in fold_axis.get_xticklabels()][0] == "CNN"  # best first
    assert len(figures["auc_vs_best"].axes[0].texts) == 4  # a p-value note per comparison
    for figure in figures.values():
        figure.canvas.draw()  # lays out without error
    empty = plots.compare.epoch_history({"Ensemble": pd.DataFrame(columns=["fold", "epoch", "val_auc"])})
    assert empty.axes[0].texts[0].get_text() == "no per-epoch history logged"


def test_the_best_on_validation_is_read_from_the_store_and_logged(store):
    from mlflow.tracking import MlflowClient

    from rbp.tracking.reading import fold_runs

    pipeline_id, cv_ids = store.pipeline()
    cv_runs = find_cv_runs(pipeline_run_id=pipeline_id)
    validation = {"lstm": 0.97, "dnabert": 0.93}  # the LSTM best on validation, DNABERT on test
    for run in cv_runs:
        for fold in fold_runs(run):
            MlflowClient().log_metric(fold.info.run_id, "best_val_auc",
                                      validation[run.family] + 0.001 * int(fold.data.tags["fold"]))
    results = load_results(cv_runs)
    assert results["LSTM"].fold_metrics.best_val_auc.tolist() == pytest.approx([0.971, 0.972, 0.973, 0.974, 0.975])
    table = compare.results_table(results)
    comparison = compare.compare_models(results)
    verdict = reporting.verdict(table, comparison)
    assert comparison.best == "LSTM" and verdict.sentence.startswith("LSTM is the best on validation")
    figures = plots.comparison_figures(results, comparison)
    tracking.log_comparison(pipeline_id, table, comparison, figures, cv_runs, verdict)
    assert {"compare/figures/auc_vs_best.png", "compare/validation.csv"} <= set(artifacts(pipeline_id))
    summary = json.loads(mlflow.artifacts.load_text(f"runs:/{pipeline_id}/compare/summary.json"))
    assert summary["best"] == "LSTM" and "validation" in summary["chosen_by"]
    assert summary["compared"] == "each model against the best" and "Holm" in summary["p_adjustment"]
    assert summary["auc_difference"][0]["model_a"] == "DNABERT (pretrained)"
    assert summary["auc_difference"][0]["p_value_holm"] == pytest.approx(summary["auc_difference"][0]["p_value"])
    csv = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{pipeline_id}/compare/paired_tests.csv"))
    assert {"t_pvalue_holm", "wilcoxon_pvalue_holm"} <= set(csv.columns)
    logged = MlflowClient().get_run(pipeline_id).data.metrics
    assert logged["dnabert_pretrained.vs_best.difference"] > 0 and logged["lstm.mean_best_val_auc"] == \
        pytest.approx(0.973)


def test_dnabert_runs_are_also_shown_in_dnaberts_own_metrics(store):
    from rbp.records import CVRun

    pipeline_id, _ = store.pipeline()
    cv_runs = find_cv_runs(pipeline_run_id=pipeline_id)
    table = compare.results_table(load_results(cv_runs))
    own = reporting.dnabert_style_table(table)
    assert own.columns.tolist() == ["folds", "accuracy", "macro F1", "MCC", "ROC AUC", "AUPRC", "macro precision",
                                    "macro recall"]
    values = fold_values("dnabert", "test_f1_macro")
    assert own.loc["DNABERT (pretrained)", "macro F1"] == f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"
    assert "macro F1" not in reporting.format_table(table).columns  # the main table: the binding class's F1
    assert reporting.dnabert_style_table(table[table.model == "LSTM"]) is None

    assert compare.protocol_note(cv_runs) is None
    parity = CVRun("r", "dnabert_cv", "1", "FINISHED", {"model_family": "dnabert", "init": "pretrained",
                                                        "selection": "final"})
    note = compare.protocol_note([*cv_runs, parity])
    assert note.startswith("**DNABERT (pretrained, parity (no selection))**") and "final epoch" in note


def _fixed_test_models():
    """A and B trained once and scored on one fixed test set of 1 bound : 4 not."""
    from rbp.records import CVRun, ModelResults

    rng = np.random.default_rng(0)
    labels = (np.arange(1000) % 5 == 0).astype(int)
    out = {}
    for name, separation, validation in (("A", 2.0, 0.95), ("B", 0.8, 0.90)):
        oof = pd.DataFrame({"id": [f"t{i}" for i in range(1000)], "label": labels,
                            "probability": 1 / (1 + np.exp(-(separation * labels + rng.normal(size=1000)))),
                            "fold": 1})
        folds = pd.DataFrame([{"fold": 1, "best_val_auc": validation,
                               **{m.test_key: roc_auc_score(oof.label, oof.probability) for m in METRICS}}])
        history = pd.DataFrame([{"fold": 1, "epoch": 1, "val_auc": validation}])
        run = CVRun(name, name, "0", "FINISHED", {"model_family": name, "protocol": "fixed_test",
                                                   "test_sha256": "ab" * 32})
        out[name] = ModelResults(name, run, folds, oof, history)
    return out


def test_a_fixed_test_set_says_so_with_its_chance_auprc():
    results = _fixed_test_models()
    kind, said = compare.test_protocol(results)
    assert kind == "fixed_test"
    assert said.startswith("Test figures: a fixed test set (sha256 abababababab), scored once per model")
    assert "1,000 test sequences, 20.0% of them binding sites: a model that guesses has an AUPRC of 0.200" in said
    verdict = reporting.verdict(compare.results_table(results), compare.compare_models(results), None, (kind, said))
    assert verdict.sentence.startswith("A is the best on validation: validation ROC AUC 0.950; test ROC AUC 0.")
    assert "over 1 folds" not in verdict.sentence and "out-of-fold" not in verdict.sentence
    assert "Against it, on the test set's ROC AUC (DeLong" in verdict.sentence and verdict.sentence.endswith(said)
    cv_kind, cv_said = compare.test_protocol(_two_models(0.6))
    assert cv_kind == "cv" and cv_said.startswith("Test figures: 5-fold cross-validation")
    assert "AUPRC of 0.500 (chance)" in cv_said
    mixed = {**_two_models(0.6), "C": results["A"]}
    assert compare.test_protocol(mixed)[0] == "mixed"
