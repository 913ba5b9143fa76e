"""Resuming: fold jobs into one CV run, a gather step, and a CV run reopened after a fold broke off."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from rbp import tracking
from rbp.cv import Callbacks, cross_validate
from rbp.data import Folds, prepare_folds
from rbp.errors import RbpError
from rbp.families import make_family
from rbp.params import load_params
from rbp.tracking import find_pipeline_run, reading, resume
from tests.conftest import ROOT


@pytest.fixture
def setup(small_data_dir, tmp_path, mlflow_store):
    params = load_params(ROOT / "params" / "smoke.yaml", {"data_dir": str(small_data_dir), "dataset": "tiny",
                                                          "folds": 3})
    prepare_folds(params, tmp_path / "run")
    folds = Folds(tmp_path / "run" / "folds")
    tracking.use_experiment(params.dataset_name)
    pipeline = MlflowClient().create_run(mlflow.get_experiment_by_name("tiny").experiment_id, run_name="pipe",
                                         tags={"model_family": "pipeline"})
    return params, folds, pipeline.info.run_id


def _cv(params, folds, parent, fold=None, callbacks=()):
    family = make_family("lstm", params)
    with tracking.CVLogger(family, folds, params.lstm, params, parent, fold=fold) as logger:
        results = cross_validate(family, folds, params.lstm, torch.device("cpu"), params.seed,
                                 callbacks=[logger, *callbacks], progress=False, only=logger.pending,
                                 kept=logger.kept)
    return logger, results


def _fold_runs(cv_run_id):
    runs = MlflowClient().search_runs([mlflow.get_experiment_by_name("tiny").experiment_id],
                                      f"tags.mlflow.parentRunId = '{cv_run_id}'")
    return sorted((int(r.data.tags["fold"]), r.info.status) for r in runs)


@pytest.mark.slow
def test_fold_jobs_and_a_gather_equal_one_cross_validation(setup):
    params, folds, parent = setup
    whole, reference = _cv(params, folds, None)  # one process, every fold (a run of its own)

    jobs = [_cv(params, folds, parent, fold=fold)[0] for fold in (2, 1, 3)]  # any order
    cv_run_id = jobs[0].run_id
    assert {job.run_id for job in jobs} == {cv_run_id}  # one CV run under the pipeline run
    assert MlflowClient().get_run(cv_run_id).info.status == "RUNNING"  # left open for the gather step
    assert _fold_runs(cv_run_id) == [(1, "FINISHED"), (2, "FINISHED"), (3, "FINISHED")]
    again, _ = _cv(params, folds, parent, fold=2)  # a fold job whose fold is done trains nothing
    assert again.pending == [] and len(_fold_runs(cv_run_id)) == 3

    gather, results = _cv(params, folds, parent)  # the notebook without a fold: keeps all three, trains none
    assert gather.run_id == cv_run_id and gather.pending == [] and [r.fold for r in gather.kept] == [1, 2, 3]
    run = MlflowClient().get_run(cv_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["kept_folds"] == "1,2,3"
    assert run.data.tags["model_uri"] and len(_fold_runs(cv_run_id)) == 3
    for kept, fresh in zip(results, reference, strict=True):  # seeded alike: the same figures as one process
        assert kept.fold == fresh.fold and kept.best_epoch == fresh.best_epoch
        assert kept.metrics == pytest.approx(fresh.metrics, abs=1e-9)
        assert np.allclose(kept.predictions.probability, fresh.predictions.probability, atol=1e-6)
        assert [log.epoch for log in kept.training.history] == [log.epoch for log in fresh.training.history]
        assert [log.val_auc for log in kept.training.history] == pytest.approx(
            [log.val_auc for log in fresh.training.history])
        # the model rebuilt from the fold's checkpoint scores as the trained one did
        with torch.no_grad():
            encoded = make_family("lstm", params).encode(folds.sequences.sequence.iloc[:5])
            assert torch.allclose(kept.model(**encoded), fresh.model.eval()(**encoded), atol=1e-5)
    summary = MlflowClient().get_run(whole.run_id).data.metrics
    assert run.data.metrics["mean_test_auc"] == pytest.approx(summary["mean_test_auc"], abs=1e-9)


class _Stop(Callbacks):
    """Breaks off in the given fold's first epoch, as a kill would."""

    def __init__(self, fold, error=KeyboardInterrupt):
        self.fold, self.error = fold, error

    def epoch_ended(self, fold, log):
        if fold == self.fold:
            raise self.error


@pytest.mark.slow
def test_a_cv_run_broken_off_in_fold_2_is_resumed_from_fold_2(setup):
    params, folds, parent = setup
    with pytest.raises(KeyboardInterrupt):
        _cv(params, folds, parent, callbacks=[_Stop(2)])
    cv = resume.find_cv_run(parent, "lstm_cv")
    assert cv.info.status == "KILLED" and _fold_runs(cv.info.run_id) == [(1, "FINISHED"), (2, "KILLED")]

    logger, results = _cv(params, folds, parent)
    assert logger.run_id == cv.info.run_id  # the same CV run, reopened
    assert [r.fold for r in logger.kept] == [1] and [r.fold for r in results] == [1, 2, 3]
    run = MlflowClient().get_run(cv.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["resumed"] == "1" and run.data.tags["kept_folds"] == "1"
    assert _fold_runs(cv.info.run_id) == [(1, "FINISHED"), (2, "FINISHED"), (2, "KILLED"), (3, "FINISHED")]
    logged = pd.read_csv(MlflowClient().download_artifacts(cv.info.run_id, "fold_metrics.csv"))
    assert logged.fold.tolist() == [1, 2, 3]  # the killed fold-2 run is not among the results
    assert run.data.metrics["n_folds"] == 3
    # what the comparison reads back: one row and one curve per fold, the killed run's left out
    (cv_run,) = reading.find_cv_runs(pipeline_run_id=parent)
    assert reading.load_fold_metrics(cv_run).fold.tolist() == [1, 2, 3]
    history = reading.load_history(cv_run)
    assert history.groupby("fold").epoch.apply(list).to_dict() == {
        r.fold: [log.epoch for log in r.training.history] for r in results}


def test_a_fold_job_needs_a_pipeline_run_and_a_fold_of_the_folds(setup):
    params, folds, parent = setup
    family = make_family("lstm", params)
    with pytest.raises(RbpError, match="parent_run_id"):
        tracking.CVLogger(family, folds, params.lstm, params, None, fold=1)
    with pytest.raises(RbpError, match="fold: 7 is not a fold"):
        tracking.CVLogger(family, folds, params.lstm, params, parent, fold=7)


def test_a_fold_is_kept_only_with_its_predictions_and_checkpoint(setup):
    params, folds, parent = setup
    family = make_family("lstm", params)
    logger = tracking.CVLogger(family, folds, params.lstm, params, parent, fold=1)
    cv_run_id = logger.open()
    assert logger.open() == cv_run_id  # found, not made twice
    client = MlflowClient()
    experiment = client.get_run(cv_run_id).info.experiment_id
    bare = client.create_run(experiment, run_name="fold-1", tags={"mlflow.parentRunId": cv_run_id, "fold": "1"})
    client.set_terminated(bare.info.run_id, "FINISHED")  # FINISHED, but nothing logged
    assert resume.finished_folds(client.get_run(cv_run_id), family) == {}


def test_a_pipeline_run_is_found_by_name_or_id_and_nothing_else(setup):
    _, _, parent = setup
    assert find_pipeline_run("pipe", "--resume").info.run_id == parent
    assert find_pipeline_run(parent, "--resume").info.run_id == parent
    with pytest.raises(RbpError, match="--resume: 'nope' is neither the id nor the name of a pipeline run"):
        find_pipeline_run("nope", "--resume")
    other = MlflowClient().create_run(mlflow.get_experiment_by_name("tiny").experiment_id, run_name="x",
                                      tags={"model_family": "lstm"})
    with pytest.raises(RbpError, match="not a pipeline run"):
        find_pipeline_run(other.info.run_id, "--resume")
    with pytest.raises(RbpError, match="no params.yaml"):
        resume.logged_params(MlflowClient().get_run(parent))


def _wait_for(predicate, what, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def _fold_run_states(experiment):
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = MlflowClient().search_runs([found.experiment_id], "tags.fold != ''")
    return {(r.data.tags["fold"], r.info.status) for r in runs}


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_rbp_run_killed_in_fold_2_resumes_from_fold_2(how, mlflow_store, small_data_dir, tmp_path):
    """Ctrl-C and `kill` (exit 130, `rbp: interrupted` alone on stderr, every run ended KILLED on the way
    out) and `kill -9` (leaves them RUNNING: the next start marks them KILLED): either way `rbp run
    --resume` keeps fold 1 and trains fold 2 again (resumed after SIGINT and SIGKILL; SIGTERM, which ends
    the runs as SIGINT does, is sent in fold 1 and not resumed)."""
    args = [sys.executable, "-m", "rbp", "run", "--params", str(ROOT / "params" / "smoke.yaml"),
            "-p", f"data_dir={small_data_dir}", "-p", "dataset=killed", "-p", "folds=2",
            "-p", "notebooks=[01_preprocess,03_lstm_cv]", "-p", "lstm.max_epochs=120", "-p", "lstm.patience=120",
            "-p", f"output_dir={tmp_path / 'outputs'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    fold = "1" if how == signal.SIGTERM else "2"
    _wait_for(lambda: (fold, "RUNNING") in _fold_run_states("killed") or job.poll() is not None, f"fold {fold}")
    job.send_signal(how)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 130), stderr[-3000:]
    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name("killed").experiment_id
    pipeline = client.search_runs([experiment_id], "tags.model_family = 'pipeline'")[0]
    if how != signal.SIGKILL:  # Ctrl-C or `kill`: one line, and the runs are ended on the way out
        assert stderr.strip() == "rbp: interrupted", stderr[-3000:]
        assert pipeline.info.status == "KILLED"
        statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment_id])
                    if "fold" not in r.data.tags}
        assert statuses == {"preprocess": "FINISHED", "lstm_cv": "KILLED", pipeline.info.run_name: "KILLED"}
        assert _fold_run_states("killed") == ({("1", "KILLED")} if how == signal.SIGTERM
                                              else {("1", "FINISHED"), ("2", "KILLED")})
    else:  # nothing could end them; the kernel notices its parent is gone and exits
        assert pipeline.info.status == "RUNNING"
        _wait_for(lambda: _fold_run_states("killed") == {("1", "FINISHED"), ("2", "RUNNING")}, "the kernel to stop",
                  30)
    # the progress files a driver keeps (in the system's temporary folder, named by its process): removed on
    # the way out after Ctrl-C and `kill`; after `kill -9` the one of the step it was in is left behind
    left = sorted(path.name for path in Path(tempfile.gettempdir()).glob(f"rbp-{job.pid}-*.progress.jsonl"))
    assert left == ([f"rbp-{job.pid}-03_lstm_cv.progress.jsonl"] if how == signal.SIGKILL else [])
    for name in left:
        (Path(tempfile.gettempdir()) / name).unlink()
    if how == signal.SIGTERM:  # ended as Ctrl-C ends them: resuming is the same as after SIGINT
        return

    resumed = subprocess.run([sys.executable, "-m", "rbp", "run", "--resume", pipeline.info.run_name], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "01_preprocess: finished before, kept" in resumed.stdout
    pipeline = client.get_run(pipeline.info.run_id)
    assert pipeline.info.status == "FINISHED" and pipeline.data.tags["resumed"] == "1"
    cv = resume.find_cv_run(pipeline.info.run_id, "lstm_cv")
    assert cv.info.status == "FINISHED" and cv.data.tags["kept_folds"] == "1" and cv.data.metrics["n_folds"] == 2
    assert _fold_run_states("killed") == {("1", "FINISHED"), ("2", "KILLED"), ("2", "FINISHED")}
    preprocess = client.search_runs([pipeline.info.experiment_id], "attributes.run_name = 'preprocess'")
    assert len(preprocess) == 1  # the folds were not made again
