"""rbp.compare on a small fake MLflow store: the summary table, every pair's comparison, logging, notebook."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rbp import compare, plots
from rbp.metrics import METRICS
from rbp.runs import find_cv_runs, load_results, pipeline_run_of
from tests.conftest import ROOT
from tests.fake_store import EXPERIMENT, FOLD_AUC, FakeStore, artifacts, fold_values


@pytest.fixture
def store(mlflow_store):
    return FakeStore()


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
    shown = compare.format_table(pd.concat([table, compare.reference_rows()], ignore_index=True))
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
    logged = compare.log_comparison(pipeline_id, table, comparison, figures, cv_runs)
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
    figures = plots.comparison_figures(results)
    table = compare.results_table(results)
    compare.log_comparison(pipeline_id, table, comparison, figures)
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



def _two_models(separation_b: float, n: int = 2000, seed: int = 0):
    """Results of model A (clearly separating) and B, five folds each, with pooled predictions."""
    from rbp.runs import CVRun, ModelResults

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    out = {}
    for name, separation in (("A", 1.5), ("B", separation_b)):
        noise = rng.normal(size=n)
        oof = pd.DataFrame({"id": [f"s{i}" for i in range(n)], "label": labels,
                            "probability": 1 / (1 + np.exp(-(separation * labels + noise))),
                            "fold": np.arange(n) % 5 + 1})
        folds = pd.DataFrame([{"fold": f, **{m.test_key: roc_auc_score(part.label, part.probability)
                                                for m in METRICS}}
                              for f, part in oof.groupby("fold")])
        run = CVRun(name, name, "0", "FINISHED", {"model_family": name})
        out[name] = ModelResults(name, run, folds, oof, pd.DataFrame(columns=["fold", "epoch", "val_auc"]))
    return out


def test_the_verdict_names_the_winner_when_the_interval_excludes_zero():
    results = _two_models(separation_b=0.6)
    table = compare.results_table(results)
    verdict = compare.verdict(table, compare.compare_models(results), ceiling=0.9)
    assert verdict.sentence.startswith("A beats B. A: test ROC AUC ")
    assert "over 5 folds" in verdict.sentence and "95% CI +" in verdict.sentence
    assert "below the ceiling of 0.900" in verdict.sentence
    assert verdict.table.index.tolist() == ["A", "B"] and list(verdict.table.columns) == [
        "folds", "ROC AUC", "AUPRC", "accuracy"]
    assert verdict.metrics["difference.ci_low"] > 0 and verdict.metrics["ceiling_auc"] == 0.9
    assert verdict.metrics["a.mean_test_auc"] == pytest.approx(table.mean_test_auc[0])


def test_the_verdict_says_when_two_models_cannot_be_told_apart():
    results = _two_models(separation_b=1.5, seed=3)
    verdict = compare.verdict(compare.results_table(results), compare.compare_models(results))
    assert "cannot be told apart on this data: the interval holds zero" in verdict.sentence
    low, high = verdict.metrics["difference.ci_low"], verdict.metrics["difference.ci_high"]
    assert low < 0 < high


def test_p_values_read_as_people_write_them():
    assert [compare.format_p(p) for p in (1.9e-94, 2.3e-5, 0.0412, float("nan"))] == [
        "< 1e-10", "2.3e-05", "0.041", "–"]


def test_reference_rows_match_the_data():
    assert compare.reference_rows("synthetic", ceiling=0.91).model.tolist() == ["ceiling (planted truth)"]
    assert len(compare.reference_rows("PUM2")) == 2
    assert compare.reference_rows("hnrnpc").empty


def test_the_verdict_says_when_fold_means_and_pooled_auc_disagree():
    results = _two_models(separation_b=0.6)
    folds = results["B"].fold_metrics
    results["B"].fold_metrics = folds.assign(test_auc=folds.test_auc + 0.5)  # B first on the fold means
    verdict = compare.verdict(compare.results_table(results), compare.compare_models(results))
    assert verdict.sentence.startswith("No clear winner: B has the higher mean over folds, A the higher pooled")
    assert verdict.metrics["difference.ci_high"] < 0


def test_dnabert_runs_are_also_shown_in_dnaberts_own_metrics(store):
    from rbp.runs import CVRun

    pipeline_id, _ = store.pipeline()
    cv_runs = find_cv_runs(pipeline_run_id=pipeline_id)
    table = compare.results_table(load_results(cv_runs))
    own = compare.dnabert_style_table(table)
    assert own.columns.tolist() == ["folds", "accuracy", "macro F1", "MCC", "ROC AUC", "AUPRC", "macro precision",
                                    "macro recall"]
    values = fold_values("dnabert", "test_f1_macro")
    assert own.loc["DNABERT (pretrained)", "macro F1"] == f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"
    assert "macro F1" not in compare.format_table(table).columns  # the main table: the binding class's F1
    assert compare.dnabert_style_table(table[table.model == "LSTM"]) is None

    assert compare.protocol_note(cv_runs) is None
    parity = CVRun("r", "dnabert_cv", "1", "FINISHED", {"model_family": "dnabert", "init": "pretrained",
                                                        "selection": "final"})
    note = compare.protocol_note([*cv_runs, parity])
    assert note.startswith("**DNABERT (pretrained, parity (no selection))**") and "final epoch" in note
