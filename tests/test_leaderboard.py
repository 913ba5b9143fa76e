"""rbp.leaderboard on two fake data sets: finding pipeline runs by id, name or experiment; the table
(values, ranks, the model chosen on validation, runs left out), its wide form, the figure, the logged
run and the notebook."""

import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rbp import leaderboard, plots, tracking
from rbp.errors import RbpError
from tests.conftest import ROOT
from tests.fake_store import FOLD_AUC, FakeStore, artifacts

PUM2_AUC = {"cnn": FOLD_AUC["lstm"]}  # ties with the LSTM on test
PUM2_VAL = {"lstm": [0.97] * 5, "dnabert": [0.93] * 5, "cnn": [0.95] * 5}  # the LSTM best on validation
SYNTHETIC_VAL = {"lstm": [0.90] * 5, "dnabert": [0.96] * 5}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def stores(mlflow_store):
    """pum2 (real): DNABERT best on test, the LSTM on validation, the CNN tied with the LSTM on test, a
    k-mer LR still running and an ensemble that failed; synthetic: DNABERT best on both."""
    pum2 = FakeStore("pum2")
    pum2_id, pum2_cv = pum2.pipeline(("lstm", "dnabert", "cnn"), name="pum2-run", fold_auc=PUM2_AUC,
                                     val_auc=PUM2_VAL, synthetic=False)
    running = pum2._run("kmer_lr_cv", {"model_family": "kmer_lr", "synthetic": "false"}, pum2_id)
    failed = pum2._run("ensemble_cv", {"model_family": "ensemble", "synthetic": "false"}, pum2_id)
    pum2.client.set_terminated(failed, "FAILED")
    synthetic = FakeStore("synthetic")
    synthetic_id, synthetic_cv = synthetic.pipeline(name="synthetic-run", val_auc=SYNTHETIC_VAL)
    return {"pum2": pum2_id, "synthetic": synthetic_id, "pum2_cv": pum2_cv, "synthetic_cv": synthetic_cv,
            "running": running, "failed": failed, "pum2_store": pum2}


def test_pipeline_runs_are_found_by_id_name_or_data_set(stores):
    pum2, synthetic = stores["pum2"], stores["synthetic"]
    assert tracking.find_pipeline_runs([pum2], None) == [pum2]
    assert tracking.find_pipeline_runs(["synthetic-run"], ["pum2"]) == [synthetic, pum2]
    assert tracking.find_pipeline_runs([pum2, "pum2-run"], ["pum2"]) == [pum2]  # each once
    assert tracking.find_pipeline_runs("synthetic-run", None) == [synthetic]
    later, _ = stores["pum2_store"].pipeline(("lstm",), name="pum2-later")
    assert tracking.find_pipeline_runs(None, ["pum2"]) == [later]


def test_what_matches_nothing_is_named_in_the_error(stores):
    with pytest.raises(RbpError, match=r"'pum3-run' is neither the id nor the name of a pipeline run .*synthetic-run"):
        tracking.find_pipeline_runs(["pum3-run"], None)
    with pytest.raises(RbpError, match=r"no MLflow experiment 'pum3' .*experiments: .*pum2, synthetic"):
        tracking.find_pipeline_runs(None, ["pum3"])
    cv_run = stores["pum2_cv"]["lstm"]
    with pytest.raises(RbpError, match=rf"lstm_cv \({cv_run}\) is not a pipeline run \(model_family tag: lstm\)"):
        tracking.find_pipeline_runs([cv_run], None)
    with pytest.raises(RbpError, match="nothing to show"):
        tracking.find_pipeline_runs([], None)
    FakeStore("empty")
    with pytest.raises(RbpError, match="experiment 'empty' has no pipeline run"):
        tracking.find_pipeline_runs(None, ["empty"])
    stores["pum2_store"].pipeline(("lstm",), name="pum2-run")
    with pytest.raises(RbpError, match="2 pipeline runs are named 'pum2-run'"):
        tracking.find_pipeline_runs(["pum2-run"], None)


def test_one_row_per_data_set_and_finished_model(stores):
    table = leaderboard.leaderboard_table(tracking.leaderboard_rows([stores["pum2"], stores["synthetic"]]))
    assert table[["dataset", "model", "rank", "chosen"]].values.tolist() == [
        ["pum2", "DNABERT (pretrained)", 1, False],
        ["pum2", "CNN", 2, False],
        ["pum2", "LSTM", 2, True],  # tied with the CNN on test; chosen on validation, not on test
        ["synthetic", "DNABERT (pretrained)", 1, True],
        ["synthetic", "LSTM", 2, False],
    ]
    row = table.set_index(["dataset", "model"]).loc[("pum2", "DNABERT (pretrained)")]
    assert row.mean_test_auc == pytest.approx(np.mean(FOLD_AUC["dnabert"]))
    assert row.std_test_auc == pytest.approx(np.std(FOLD_AUC["dnabert"], ddof=1))
    assert row.n_folds == 5 and row.mean_best_val_auc == pytest.approx(0.93) and row.family == "dnabert"
    assert row.pipeline_run == "pum2-run" and row.cv_run_id == stores["pum2_cv"]["dnabert"]
    assert table.groupby("dataset").synthetic.first().to_dict() == {"pum2": False, "synthetic": True}
    left_out = table.attrs["left_out"]
    assert len(left_out) == 2 and set(table.cv_run_id).isdisjoint({stores["running"], stores["failed"]})
    assert any(stores["running"] in note and "RUNNING" in note for note in left_out)
    assert any(stores["failed"] in note and "FAILED" in note and note.startswith("pum2:") for note in left_out)


def test_a_data_set_without_validation_figures_has_no_chosen_model(mlflow_store):
    store = FakeStore("rbfox2")
    pipeline_id, _ = store.pipeline(name="rbfox2-run")
    table = leaderboard.leaderboard_table(tracking.leaderboard_rows([pipeline_id]))
    assert not table.chosen.any() and table["rank"].tolist() == [1, 2]


def test_two_runs_of_one_data_set_and_a_run_without_cv_runs(stores):
    store = stores["pum2_store"]
    other, _ = store.pipeline(("lstm",), name="pum2-other")
    empty, _ = store.pipeline((), name="pum2-empty")
    table = leaderboard.leaderboard_table(tracking.leaderboard_rows([stores["pum2"], other, empty]))
    assert list(dict.fromkeys(table.dataset)) == ["pum2 [pum2-run]", "pum2 [pum2-other]"]
    assert any("pum2-empty" in note and "no CV runs" in note for note in table.attrs["left_out"])
    with pytest.raises(RbpError, match=r"no FINISHED CV run .*pum2-empty"):
        leaderboard.leaderboard_table(tracking.leaderboard_rows([empty]))


def test_the_wide_table_has_a_column_per_data_set(stores):
    table = leaderboard.leaderboard_table(tracking.leaderboard_rows([stores["pum2"], stores["synthetic"]]))
    wide = leaderboard.format_leaderboard(table)
    assert wide.columns.tolist() == ["pum2", "synthetic", "mean over data sets", "mean rank",
                                     "chosen on validation in"]  # "synthetic" says so itself
    assert wide.index.tolist() == ["DNABERT (pretrained)", "CNN", "LSTM"]  # by mean rank, ties by name
    auc = FOLD_AUC["dnabert"]
    assert wide.loc["DNABERT (pretrained)", "pum2"] == f"{np.mean(auc):.4f} ± {np.std(auc, ddof=1):.4f} (1)"
    assert wide.loc["CNN", "synthetic"] == "–"
    assert wide["mean rank"].tolist() == ["1", "2", "2"]
    assert wide["chosen on validation in"].tolist() == ["synthetic", "–", "pum2"]


def test_the_figure_has_an_error_bar_series_per_model(stores):
    table = leaderboard.leaderboard_table(tracking.leaderboard_rows([stores["pum2"], stores["synthetic"]]))
    figure = plots.leaderboard(table)
    ax = figure.axes[0]
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert sorted(bar.get_label() for bar in bars) == ["CNN", "DNABERT (pretrained)", "LSTM"]
    assert ax.get_title() == "Test ROC AUC, mean ± std over folds"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pum2", "synthetic"]
    figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # outside, over no point
    assert "chosen on validation" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_the_leaderboard_is_logged_as_a_run(stores):
    ids = [stores["pum2"], stores["synthetic"]]
    table = leaderboard.leaderboard_table(tracking.leaderboard_rows(ids))
    run_id = tracking.log_leaderboard(table, plots.leaderboard(table), ids)
    run = MlflowClient().get_run(run_id)
    assert MlflowClient().get_experiment(run.info.experiment_id).name == "leaderboard"
    assert re.fullmatch(r"leaderboard-\d{8}-\d{6}", run.info.run_name) and run.info.status == "FINISHED"
    assert run.data.tags["model_family"] == "leaderboard" and run.data.tags["dataset"] == "pum2, synthetic"
    assert run.data.params == {"datasets": "pum2, synthetic", "pipeline_run_ids": ", ".join(ids)}
    assert {"leaderboard.csv", "figures/leaderboard.png", "left_out.txt"} <= set(artifacts(run_id))
    csv = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/leaderboard.csv"))
    assert csv.model.tolist() == table.model.tolist() and csv.chosen.tolist() == table.chosen.tolist()
    assert {key: value for key, value in run.data.metrics.items() if key.startswith("test_auc.")} == pytest.approx({
        "test_auc.pum2.dnabert": np.mean(FOLD_AUC["dnabert"]), "test_auc.pum2.lstm": np.mean(FOLD_AUC["lstm"]),
        "test_auc.pum2.cnn": np.mean(FOLD_AUC["lstm"]), "test_auc.synthetic.dnabert": np.mean(FOLD_AUC["dnabert"]),
        "test_auc.synthetic.lstm": np.mean(FOLD_AUC["lstm"])})
    assert {key.replace("test_auprc.", "test_auc.") for key in run.data.metrics if key.startswith("test_auprc.")} \
        == {key for key in run.data.metrics if key.startswith("test_auc.")}  # AUPRC beside every ROC AUC


def test_metric_names_are_what_mlflow_takes():
    table = pd.DataFrame({"dataset": ["RBFOX2 (HepG2)/eCLIP"] * 3, "family": ["dnabert", "dnabert", "lstm"],
                          "model": ["DNABERT (pretrained)", "DNABERT (scratch)", "LSTM"],
                          "mean_test_auc": [0.9, 0.8, np.nan]})
    assert leaderboard.leaderboard_metrics(table) == {"test_auc.RBFOX2 _HepG2__eCLIP.dnabert_pretrained": 0.9,
                                                      "test_auc.RBFOX2 _HepG2__eCLIP.dnabert_scratch": 0.8}


@pytest.mark.slow
def test_the_notebook_logs_a_leaderboard_run(stores, tmp_path):
    import papermill

    output = tmp_path / "08_leaderboard.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "08_leaderboard.ipynb"), str(output),
                               parameters=dict(leaderboard_runs=[stores["pum2"], "synthetic-run"],
                                               run_dir=str(tmp_path / "run")),
                               kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    experiment = MlflowClient().get_experiment_by_name("leaderboard")
    (run,) = MlflowClient().search_runs([experiment.experiment_id])
    assert run.data.tags["model_family"] == "leaderboard" and run.info.status == "FINISHED"
    assert run.data.params["pipeline_run_ids"] == f"{stores['pum2']}, {stores['synthetic']}"
    assert pd.read_csv(tmp_path / "run" / "leaderboard.csv").dataset.unique().tolist() == ["pum2", "synthetic"]
    assert run.info.run_id in output.read_text()


def test_a_synthetic_data_set_is_marked_unless_its_name_says_so():
    from rbp.plots.leaderboard import says_synthetic

    assert says_synthetic("demo", True) and not says_synthetic("rbfox-Synthetic", True)
    assert not says_synthetic("pum2", False)


def _many_sets(n_sets: int = 8) -> pd.DataFrame:
    """Rows as `tracking.leaderboard_rows` gives them: three models on `n_sets` fixed-test data sets."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_sets):
        for model, family, shift in (("CNN", "cnn", 0.03), ("k-mer LR", "kmer_lr", 0.0), ("LSTM", "lstm", 0.02)):
            auc = 0.7 + 0.02 * i + shift + rng.normal(0, 0.002)
            rows.append({"dataset": f"{i}_CLIP_P{i}", "synthetic": False, "protocol": "fixed_test", "model": model,
                         "family": family, "mean_test_auc": auc, "std_test_auc": np.nan, "mean_test_auprc": auc - 0.3,
                         "std_test_auprc": np.nan, "test_chance_auprc": 0.2, "n_folds": 1,
                         "mean_best_val_auc": auc + (0.01 if family == "cnn" else 0), "pipeline_run": f"r{i}",
                         "pipeline_run_id": f"id{i}", "cv_run_id": f"cv{i}{family}"})
    return pd.DataFrame(rows)


def test_many_fixed_test_sets_rank_on_roc_auc_and_auprc_with_the_mean_over_sets():
    table = leaderboard.leaderboard_table(_many_sets())
    cnn = table[table.model == "CNN"]
    assert (cnn["rank"] == 1).all() and (cnn["rank_auprc"] == 1).all()
    assert table[table.chosen].model.unique().tolist() == ["CNN"]
    wide = leaderboard.format_leaderboard(table, metric="auprc")
    assert wide.index.tolist() == ["chance (a guess)", "CNN", "LSTM", "k-mer LR"]
    assert wide.loc["chance (a guess)", "0_CLIP_P0"] == "0.2000"
    assert wide.loc["CNN", "mean over data sets"] == f"{cnn.mean_test_auprc.mean():.4f}"
    assert wide.loc["CNN", "3_CLIP_P3"] == f"{cnn.mean_test_auprc.iloc[3]:.4f} (1)"  # one test set: no ± std
    auc = leaderboard.format_leaderboard(table)
    assert "chance (a guess)" not in auc.index and auc.loc["CNN", "mean rank"] == "1"
    rows = leaderboard.oriented(wide)  # 8 sets, 3 models: a row per data set reads better
    assert rows.index.name == "data set" and rows.columns.tolist() == ["chance (a guess)", "CNN", "LSTM", "k-mer LR"]
    assert rows.loc["3_CLIP_P3", "CNN"] == wide.loc["CNN", "3_CLIP_P3"]
    assert rows.index[-3:].tolist() == ["mean over data sets", "mean rank", "chosen on validation in"]
    few = leaderboard.format_leaderboard(table[table.dataset.isin(["0_CLIP_P0", "1_CLIP_P1"])])
    assert leaderboard.oriented(few) is few  # two data sets: a column each
    figure = plots.leaderboard(table)  # many data sets: a row each, ROC AUC and AUPRC side by side
    assert [ax.get_xlabel() for ax in figure.axes] == ["test ROC AUC", "test AUPRC"]
    assert len(figure.axes[0].get_yticklabels()) == 8 and "one fixed test set each" in figure._suptitle.get_text()
    assert "chance (a guess)" in [t.get_text() for t in figure.axes[1].get_legend().get_texts()]


def test_the_top_motif_of_each_data_sets_chosen_model_is_drawn_with_its_match():
    ppm = np.eye(4)[[0, 1, 3, 0, 0, 1]] * 0.9 + 0.025
    figure = plots.top_motifs([
        {"dataset": "24_PARCLIP_QKI_hg19", "model": "CNN", "ppm": ppm.tolist(), "consensus": "ACUAAC", "share": 0.4,
         "match": "ACUAAY"},
        {"dataset": "12_PARCLIP_EWSR1_hg19", "model": "k-mer LR", "ppm": None, "consensus": "", "share": 0.0,
         "match": ""}])
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    assert titles[0] == "24_PARCLIP_QKI_hg19\nCNN: ACUAAC (40% of sites; matches ACUAAY)"
    assert titles[1] == "12_PARCLIP_EWSR1_hg19\nk-mer LR" and figure.axes[1].texts[0].get_text() == "no motif found"
