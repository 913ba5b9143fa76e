"""rbp.compare on a small fake MLflow store: tables, paired statistics against scipy, figures, notebook."""

import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from scipy import stats
from sklearn.metrics import roc_auc_score

from rbp import compare, compare_plots, tracking
from rbp.errors import RbpError
from tests.conftest import ROOT

EXPERIMENT = "fake"
FOLDS_SHA = "f" * 64
N_SEQUENCES = 200
# Known per-fold test metrics; the other six metrics are these shifted by a per-metric offset.
FOLD_AUC = {"lstm": [0.90, 0.92, 0.91, 0.93, 0.88], "dnabert": [0.95, 0.96, 0.94, 0.97, 0.955]}
OFFSET = {"test_auc": 0.0, "test_auprc": 0.01, "test_acc": -0.05, "test_f1": -0.06, "test_mcc": -0.2,
          "test_precision": -0.04, "test_recall": -0.07}
SEPARATION = {"lstm": 1.2, "dnabert": 2.0}  # how far positives' scores sit above negatives'


def fold_values(family: str, metric: str) -> np.ndarray:
    return np.array(FOLD_AUC[family]) + OFFSET[metric]


def fake_oof(family: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed + len(family))
    labels = np.arange(N_SEQUENCES) % 2
    logits = SEPARATION[family] * labels + rng.normal(size=N_SEQUENCES)
    return pd.DataFrame({"id": [f"seq{i}" for i in range(N_SEQUENCES)], "label": labels,
                         "probability": 1 / (1 + np.exp(-logits)),
                         "fold": np.arange(N_SEQUENCES) // 2 % 5 + 1})


class FakeStore:
    """Pipeline runs with CV runs and fold runs, written straight through the client (fast)."""

    def __init__(self):
        self.client = MlflowClient()
        self.experiment_id = tracking.use_experiment(EXPERIMENT)
        self.clock = 1_700_000_000_000  # start times one second apart: "latest" is well defined

    def _run(self, name, tags, parent=None):
        self.clock += 1000
        tags = {"dataset": EXPERIMENT, **tags, **({"mlflow.parentRunId": parent} if parent else {})}
        run = self.client.create_run(self.experiment_id, start_time=self.clock, tags=tags, run_name=name)
        return run.info.run_id

    def _log_frame(self, run_id, frame, name):
        self.client.log_text(run_id, frame.to_csv(index=False), name)

    def pipeline(self, families=("lstm", "dnabert"), with_fold_runs=True, folds_sha=FOLDS_SHA):
        pipeline_id = self._run("fake-pipeline", {"model_family": "pipeline"})
        self.client.set_terminated(self._run("preprocess", {"model_family": "data"}, pipeline_id))
        cv_ids = {}
        for family in families:
            tags = {"model_family": family, "folds_sha256": folds_sha, "synthetic": "true",
                    **({"init": "pretrained"} if family == "dnabert" else {})}
            cv_id = cv_ids[family] = self._run(f"{family}_cv", tags, pipeline_id)
            oof = fake_oof(family)
            rows = []
            for fold in range(1, 6):
                metrics = {m: float(fold_values(family, m)[fold - 1]) for m in OFFSET}
                rows.append({"fold": fold, "best_epoch": 2, **metrics})
                if with_fold_runs:
                    fold_id = self._run(f"fold-{fold}", {**tags, "fold": str(fold)}, cv_id)
                    history = [Metric("val_auc", SEPARATION[family] / 4 + 0.05 * epoch + 0.01 * fold, 0, epoch)
                               for epoch in range(1, 3 + fold % 2)]
                    once = [Metric(k, v, 0, 0) for k, v in {**metrics, "best_epoch": 2}.items()]
                    self.client.log_batch(fold_id, metrics=history + once)
                    self._log_frame(fold_id, oof[oof.fold == fold], "predictions.csv")
                    self.client.set_terminated(fold_id)
            self._log_frame(cv_id, pd.DataFrame(rows), "fold_metrics.csv")
            self._log_frame(cv_id, oof, "oof_predictions.csv")
            self.client.set_terminated(cv_id)
        return pipeline_id, cv_ids


@pytest.fixture
def store():
    return FakeStore()


def artifacts(run_id, path=None):
    out = []
    for item in MlflowClient().list_artifacts(run_id, path):
        out += artifacts(run_id, item.path) if item.is_dir else [item.path]
    return sorted(out)


def test_the_latest_pipeline_run_is_the_default(store):
    store.pipeline(("lstm",))
    latest, cv_ids = store.pipeline()
    cv_runs = compare.find_cv_runs(EXPERIMENT)
    assert [run.label for run in cv_runs] == ["DNABERT (pretrained)", "LSTM"]
    assert {run.run_id for run in cv_runs} == set(cv_ids.values())
    assert compare.pipeline_run_of(cv_runs) == latest
    explicit = compare.find_cv_runs(cv_run_ids=[cv_ids["lstm"]])
    assert [run.run_name for run in explicit] == ["lstm_cv"]


def test_dnabert_labels_say_how_it_was_initialised():
    assert compare.model_label({"model_family": "dnabert", "init": "scratch"}) == "DNABERT (scratch)"
    assert compare.model_label({"model_family": "dnabert", "init": "pretrained"}) == "DNABERT (pretrained)"
    assert compare.model_label({"model_family": "lstm"}) == "LSTM"


def test_summary_table_is_mean_and_std_over_folds(store):
    pipeline_id, _ = store.pipeline()
    results = compare.load_results(compare.find_cv_runs(pipeline_run_id=pipeline_id))
    table = compare.summary_table({label: r.fold_metrics for label, r in results.items()})
    assert table.model.tolist() == ["DNABERT (pretrained)", "LSTM"]
    for label, family in [("DNABERT (pretrained)", "dnabert"), ("LSTM", "lstm")]:
        row = table.set_index("model").loc[label]
        assert row.n_folds == 5 and row.source == "measured"
        for metric, name in compare.METRICS.items():
            values = fold_values(family, metric)
            assert row[f"{name}_mean"] == pytest.approx(values.mean())
            assert row[f"{name}_std"] == pytest.approx(values.std(ddof=1))

    reference = compare.reference_rows().set_index("model")
    assert reference.loc["LSTM (reported)", ["accuracy_mean", "roc_auc_mean"]].tolist() == [0.8952, 0.9411]
    assert reference.loc["DNABERT-3 (pretrained, reported)", "roc_auc_mean"] == 0.9692
    assert reference.source.str.startswith("reported").all() and reference.n_folds.isna().all()
    shown = compare.format_table(pd.concat([table, compare.reference_rows()], ignore_index=True))
    assert shown.loc["LSTM", "ROC AUC"] == f"{np.mean(FOLD_AUC['lstm']):.4f} ± " \
                                          f"{np.std(FOLD_AUC['lstm'], ddof=1):.4f}"
    assert shown.loc["LSTM (reported)", "accuracy"] == "0.8952" and shown.loc["LSTM (reported)", "MCC"] == ""


def test_history_and_predictions_are_loaded(store):
    pipeline_id, _ = store.pipeline(("lstm",))
    (result,) = compare.load_results(compare.find_cv_runs(pipeline_run_id=pipeline_id)).values()
    assert len(result.oof) == N_SEQUENCES and set(result.oof.columns) >= {"id", "label", "probability"}
    assert result.history.groupby("fold").epoch.max().tolist() == [3, 2, 3, 2, 3]
    assert result.fold_metrics.folds_sha256.unique().tolist() == [FOLDS_SHA]


def test_a_cv_run_without_fold_runs_is_read_from_its_artifacts(store):
    pipeline_id, _ = store.pipeline(("lstm",), with_fold_runs=False)
    (result,) = compare.load_results(compare.find_cv_runs(pipeline_run_id=pipeline_id)).values()
    assert result.fold_metrics.test_auc.tolist() == pytest.approx(FOLD_AUC["lstm"])
    assert len(result.oof) == N_SEQUENCES and result.history.empty


def test_paired_tests_equal_scipy():
    a = pd.DataFrame({"fold": [1, 2, 3, 4, 5], "test_auc": FOLD_AUC["dnabert"]})
    b = pd.DataFrame({"fold": [5, 4, 3, 2, 1], "test_auc": FOLD_AUC["lstm"][::-1]})  # order must not matter
    test = compare.paired_tests(a, b, names=("DNABERT", "LSTM"))
    x, y = np.array(FOLD_AUC["dnabert"]), np.array(FOLD_AUC["lstm"])
    t = stats.ttest_rel(x, y)
    w = stats.wilcoxon(x, y)
    assert test.n_folds == 5
    assert test.differences.difference.tolist() == pytest.approx((x - y).tolist())
    assert test.mean_difference == pytest.approx((x - y).mean())
    assert (test.t_statistic, test.t_pvalue) == pytest.approx((t.statistic, t.pvalue))
    assert (test.wilcoxon_statistic, test.wilcoxon_pvalue) == pytest.approx((w.statistic, w.pvalue))
    assert "n = 5 folds" in test.note and "0.0625" in test.note


def test_paired_tests_use_only_shared_folds_and_refuse_different_folds():
    a = pd.DataFrame({"fold": [1, 2, 3], "test_auc": [0.9, 0.8, 0.7], "folds_sha256": "x"})
    b = pd.DataFrame({"fold": [2, 3, 4], "test_auc": [0.85, 0.6, 0.5], "folds_sha256": "x"})
    test = compare.paired_tests(a, b)
    assert test.n_folds == 2 and test.differences.fold.tolist() == [2, 3]
    assert test.t_pvalue == pytest.approx(stats.ttest_rel([0.8, 0.7], [0.85, 0.6]).pvalue)
    with pytest.raises(RbpError, match="different folds"):
        compare.paired_tests(a, b.assign(folds_sha256="y"))
    with pytest.raises(RbpError, match="share no fold"):
        compare.paired_tests(a, b.assign(fold=[7, 8, 9]))
    one = compare.paired_tests(a, b.assign(fold=[3, 8, 9]))
    assert one.n_folds == 1 and math.isnan(one.t_pvalue) and "no paired test" in one.note


def _direct_delong(x, y, labels):
    """DeLong from its definition: the kernel psi over every positive-negative pair."""
    pos, neg = labels == 1, labels == 0
    v10, v01 = [], []
    for scores in (x, y):
        psi = (scores[pos][:, None] > scores[neg][None, :]) + 0.5 * (scores[pos][:, None] == scores[neg][None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    var = np.array([1, -1]) @ (np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()) @ np.array([1, -1])
    diff = v10[0].mean() - v10[1].mean()
    return diff, diff - stats.norm.ppf(0.975) * np.sqrt(var), 2 * stats.norm.sf(abs(diff) / np.sqrt(var))


def test_delong_equals_a_direct_computation():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 120)
    x = np.round(labels + rng.normal(size=120), 1)  # rounding makes ties, which DeLong scores 1/2
    y = np.round(0.5 * labels + rng.normal(size=120), 1)
    a = pd.DataFrame({"id": range(120), "label": labels, "probability": x})
    b = pd.DataFrame({"id": range(120)[::-1], "label": labels[::-1], "probability": y[::-1]})  # paired on id
    result = compare.auc_difference_ci(a, b)
    diff, low, p = _direct_delong(x, y, labels)
    assert result.auc_a == pytest.approx(roc_auc_score(labels, x))
    assert result.auc_b == pytest.approx(roc_auc_score(labels, y))
    assert (result.difference, result.ci_low, result.p_value) == pytest.approx((diff, low, p))
    assert result.ci_high - result.difference == pytest.approx(result.difference - result.ci_low)
    assert result.n == 120 and result.n_positives == labels.sum()


def test_the_interval_contains_the_true_difference():
    """Binormal scores with a shared component: true AUC = Phi(separation / sqrt(2))."""
    rng = np.random.default_rng(7)
    n = 1500
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    shared = rng.normal(size=2 * n)
    x = 1.5 * labels + np.sqrt(0.5) * (shared + rng.normal(size=2 * n))
    y = 0.9 * labels + np.sqrt(0.5) * (shared + rng.normal(size=2 * n))
    truth = stats.norm.cdf(1.5 / np.sqrt(2)) - stats.norm.cdf(0.9 / np.sqrt(2))
    a = pd.DataFrame({"id": range(2 * n), "label": labels, "probability": x})
    b = a.assign(probability=y)
    delong = compare.auc_difference_ci(a, b)
    boot = compare.auc_difference_ci(a, b, method="bootstrap", n_boot=300, seed=1)
    for result in (delong, boot):
        assert result.ci_low < truth < result.ci_high and result.p_value < 1e-6
    assert boot.difference == delong.difference
    assert (boot.ci_low, boot.ci_high) == pytest.approx((delong.ci_low, delong.ci_high), abs=0.01)
    same = compare.auc_difference_ci(a, a)
    assert (same.difference, same.ci_low, same.ci_high, same.p_value) == (0, 0, 0, 1)


def test_auc_difference_refuses_predictions_that_do_not_pair():
    a = fake_oof("lstm")
    with pytest.raises(RbpError, match="different folds"):
        compare.auc_difference_ci(a, a.assign(fold=a.fold % 5 + 1))
    with pytest.raises(RbpError, match="disagree on the label"):
        compare.auc_difference_ci(a, a.assign(label=1 - a.label))
    with pytest.raises(RbpError, match="no out-of-fold prediction for the same sequence"):
        compare.auc_difference_ci(a, a.assign(id="other" + a.id))


def test_comparison_is_logged_to_the_pipeline_run(store):
    pipeline_id, cv_ids = store.pipeline()
    cv_runs = compare.find_cv_runs(pipeline_run_id=pipeline_id)
    results = compare.load_results(cv_runs)
    comparison = compare.compare_models(results)
    assert comparison.tests[["model_a", "model_b", "n_folds"]].values.tolist() == [
        ["DNABERT (pretrained)", "LSTM", 5]]
    auc = comparison.auc_differences.iloc[0]
    assert auc.auc_a == pytest.approx(roc_auc_score(results["DNABERT (pretrained)"].oof.label,
                                                    results["DNABERT (pretrained)"].oof.probability))
    assert auc.ci_low < auc.difference < auc.ci_high and auc.method == "delong"
    assert len(comparison.fold_differences) == 5

    table = compare.summary_table({label: r.fold_metrics for label, r in results.items()})
    figures = compare_plots.comparison_figures(results)
    logged = compare.log_comparison(pipeline_id, table, comparison, figures, cv_runs)
    files = artifacts(pipeline_id)
    assert set(logged) <= set(files)
    assert {f"compare/figures/{name}.png" for name in
            ("roc_curves", "pr_curves", "fold_auc", "val_auc_per_epoch")} <= set(files)
    summary = json.loads(mlflow.artifacts.load_text(f"runs:/{pipeline_id}/compare/summary.json"))
    assert summary["cv_runs"] == {"DNABERT (pretrained)": cv_ids["dnabert"], "LSTM": cv_ids["lstm"]}
    assert summary["paired_tests"][0]["t_pvalue"] == pytest.approx(comparison.tests.t_pvalue[0])
    csv = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{pipeline_id}/compare/summary.csv"))
    assert csv.roc_auc_mean.tolist() == pytest.approx([np.mean(FOLD_AUC["dnabert"]), np.mean(FOLD_AUC["lstm"])])


def test_one_model_has_no_test_and_says_so(store):
    pipeline_id, _ = store.pipeline(("lstm",))
    results = compare.load_results(compare.find_cv_runs(pipeline_run_id=pipeline_id))
    comparison = compare.compare_models(results)
    assert comparison.tests.empty and comparison.auc_differences.empty
    assert comparison.notes and "Only one model (LSTM): no paired comparison" in comparison.notes[0]
    figures = compare_plots.comparison_figures(results)
    table = compare.summary_table({label: r.fold_metrics for label, r in results.items()})
    compare.log_comparison(pipeline_id, table, comparison, figures)
    assert "compare/figures/fold_auc.png" in artifacts(pipeline_id)


def test_models_on_different_folds_are_not_paired(store):
    pipeline_id, _ = store.pipeline(("lstm",))
    other_id, _ = store.pipeline(("dnabert",), folds_sha="0" * 64)
    cv_runs = (compare.find_cv_runs(pipeline_run_id=pipeline_id)
               + compare.find_cv_runs(pipeline_run_id=other_id))
    assert compare.pipeline_run_of(cv_runs) is None
    comparison = compare.compare_models(compare.load_results(cv_runs))
    assert comparison.tests.empty and "different folds" in comparison.notes[0]


def test_clear_messages_when_there_is_nothing_to_compare(store):
    pipeline_id, _ = store.pipeline(families=())
    with pytest.raises(RbpError, match=rf"fake-pipeline \({pipeline_id}\) has no CV runs .*preprocess"):
        compare.find_cv_runs(pipeline_run_id=pipeline_id)
    with pytest.raises(RbpError, match="has no CV runs"):
        compare.find_cv_runs(EXPERIMENT)
    with pytest.raises(RbpError, match="'nope': no such run"):
        compare.find_cv_runs(pipeline_run_id="nope")
    with pytest.raises(RbpError, match="is not a CV run"):
        compare.find_cv_runs(cv_run_ids=[pipeline_id])
    with pytest.raises(RbpError, match="experiment 'absent' does not exist"):
        compare.find_cv_runs("absent")


def test_the_notebook_logs_to_the_pipeline_run_and_exports_html(store, tmp_path):
    import papermill

    pipeline_id, _ = store.pipeline()
    output = tmp_path / "04_compare.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "04_compare.ipynb"), str(output),
                               parameters=dict(compare_run_id=pipeline_id, dataset=EXPERIMENT),
                               kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    files = artifacts(pipeline_id)
    assert {"compare/summary.csv", "compare/summary.json", "compare/paired_tests.csv",
            "compare/figures/roc_curves.png", "compare/figures/val_auc_per_epoch.png"} <= set(files)

    html = compare.log_report(output, pipeline_id)
    text = html.read_text()
    assert html == tmp_path / "04_compare.html" and "Paired comparison" in text and "<img" in text
    assert "reports/04_compare.html" in artifacts(pipeline_id)
