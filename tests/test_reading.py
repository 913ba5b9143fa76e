"""rbp.tracking.reading: finding a pipeline run's CV runs and loading what they logged, from a fake store."""

import pytest

from rbp.errors import RbpError
from rbp.records import model_label, pipeline_run_of
from rbp.tracking import reading
from tests.fake_store import EXPERIMENT, FOLD_AUC, FOLDS_SHA, N_SEQUENCES, FakeStore


@pytest.fixture
def store(mlflow_store):
    return FakeStore()


def test_the_latest_pipeline_run_is_the_default(store):
    store.pipeline(("lstm",))
    latest, cv_ids = store.pipeline()
    cv_runs = reading.find_cv_runs(EXPERIMENT)
    assert [run.label for run in cv_runs] == ["DNABERT (pretrained)", "LSTM"]
    assert {run.run_id for run in cv_runs} == set(cv_ids.values())
    assert pipeline_run_of(cv_runs) == latest
    explicit = reading.find_cv_runs(cv_run_ids=[cv_ids["lstm"]])
    assert [run.run_name for run in explicit] == ["lstm_cv"]


def test_a_predict_run_under_the_pipeline_is_no_cv_run(store):
    pipeline_id, cv_ids = store.pipeline()
    store.client.set_terminated(store._run("predict", {"model_family": "predict"}, pipeline_id))
    assert {run.run_id for run in reading.find_cv_runs(pipeline_run_id=pipeline_id)} == set(cv_ids.values())


def test_dnabert_labels_say_how_it_was_initialised():
    assert model_label({"model_family": "dnabert", "init": "scratch"}) == "DNABERT (scratch)"
    assert model_label({"model_family": "dnabert", "init": "pretrained"}) == "DNABERT (pretrained)"
    assert model_label({"model_family": "lstm"}) == "LSTM"
    assert model_label({"model_family": "lstm", "length": "41"}) == "LSTM (41 nt)"
    assert model_label({"model_family": "gru", "length": "full"}) == "gru"
    assert model_label({"model_family": "kmer_lr", "length": "41"}) == "k-mer LR (41 nt)"


def test_history_and_predictions_are_loaded(store):
    pipeline_id, _ = store.pipeline(("lstm",))
    (result,) = reading.load_results(reading.find_cv_runs(pipeline_run_id=pipeline_id)).values()
    assert len(result.oof) == N_SEQUENCES and set(result.oof.columns) >= {"id", "label", "probability"}
    assert result.history.groupby("fold").epoch.max().tolist() == [3, 2, 3, 2, 3]
    assert result.fold_metrics.folds_sha256.unique().tolist() == [FOLDS_SHA]


def test_a_cv_run_without_fold_runs_is_read_from_its_artifacts(store):
    pipeline_id, _ = store.pipeline(("lstm",), with_fold_runs=False)
    (result,) = reading.load_results(reading.find_cv_runs(pipeline_run_id=pipeline_id)).values()
    assert result.fold_metrics.test_auc.tolist() == pytest.approx(FOLD_AUC["lstm"])
    assert len(result.oof) == N_SEQUENCES and result.history.empty


def test_clear_messages_when_there_is_nothing_to_compare(store):
    pipeline_id, _ = store.pipeline(families=())
    with pytest.raises(RbpError, match=rf"fake-pipeline \({pipeline_id}\) has no CV runs .*preprocess"):
        reading.find_cv_runs(pipeline_run_id=pipeline_id)
    with pytest.raises(RbpError, match="has no CV runs"):
        reading.find_cv_runs(EXPERIMENT)
    with pytest.raises(RbpError, match="'nope': no such run"):
        reading.find_cv_runs(pipeline_run_id="nope")
    with pytest.raises(RbpError, match="is not a CV run"):
        reading.find_cv_runs(cv_run_ids=[pipeline_id])
    with pytest.raises(RbpError, match="experiment 'absent' does not exist"):
        reading.find_cv_runs("absent")
