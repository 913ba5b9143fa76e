"""Picking up what a run already finished: the steps of a pipeline run, the folds of a CV run.

`rbp run --resume` and the workflow's fold jobs reopen runs instead of starting over. A fold counts
as done when its run is FINISHED and holds its predictions and its checkpoint; anything else (a run
left RUNNING by a kill, FAILED, KILLED, or no run at all) is done again. A step of a pipeline run
counts as done when the driver tagged it so after it succeeded.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import yaml

from rbp.errors import RbpError
from rbp.families import FAMILIES
from rbp.tracking.lifecycle import STEP_TAG
from rbp.tracking.reading import child_runs, latest_fold_runs
from rbp.tracking.store import client, quiet_downloads
from rbp.train import EpochLog, TrainResult

KEPT_FOLDS = "kept_folds"  # tag on a reopened CV run: the folds it did not train again


def cv_run_name(family: str, length: int | None) -> str:
    """The CV run of a family under a pipeline run: `lstm_cv`, or `lstm_cv-41nt` in a length sweep."""
    return f"{family}_cv" + (f"-{length}nt" if length else "")


def logged_params(run) -> dict:
    """The params a pipeline run was started with (its `params.yaml` artifact)."""
    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        try:
            path = client().download_artifacts(run.info.run_id, "params.yaml", tmp)
        except Exception:  # noqa: BLE001 (MlflowException or OSError: the run never logged them)
            raise RbpError(f"--resume: pipeline run {run.info.run_name} has no params.yaml artifact; "
                           "it cannot be resumed") from None
        return yaml.safe_load(Path(path).read_text()) or {}


def find_cv_run(pipeline_run_id: str, name: str):
    """The CV run named `name` under a pipeline run (the latest, if several), or None."""
    pipeline = client().get_run(pipeline_run_id)
    for run in child_runs(pipeline_run_id, pipeline.info.experiment_id):
        if run.info.run_name == name and "fold" not in run.data.tags:
            return run
    return None


def steps_done(pipeline_run) -> set[str]:
    """The notebooks (output names, e.g. `03_lstm_cv-41nt`) a pipeline run finished. Runs made before
    steps were tagged count their FINISHED preprocess and CV runs."""
    done = {key[len(STEP_TAG):] for key in pipeline_run.data.tags if key.startswith(STEP_TAG)}
    if not done:
        notebooks = {info.notebook: family for family, info in FAMILIES.items()}
        finished = {run.info.run_name for run in child_runs(pipeline_run.info.run_id, pipeline_run.info.experiment_id)
                    if run.info.status == "FINISHED"}
        done = {"01_preprocess"} if "preprocess" in finished else set()
        for stem in _logged_notebooks(pipeline_run):
            name, _, length = stem.partition("-")
            family = notebooks.get(name)
            if family and cv_run_name(family, int(length[:-2]) if length else None) in finished:
                done.add(stem)
    return done


def _logged_notebooks(pipeline_run) -> list[str]:
    return [Path(item.path).stem for item in client().list_artifacts(pipeline_run.info.run_id, "notebooks")]


def done_folds(cv_run) -> dict[int, object]:
    """fold -> its latest FINISHED run under `cv_run`, where that run is done: it holds its
    predictions and checkpoint."""
    return {fold: run for fold, run in latest_fold_runs(cv_run.info.run_id, cv_run.info.experiment_id).items()
            if _complete(run)}


def _complete(run) -> bool:
    names = {Path(item.path).name for item in client().list_artifacts(run.info.run_id)}
    return {"predictions.csv", "checkpoint"} <= names


def finished_folds(cv_run, family, folds: list[int] | None = None) -> dict[int, object]:
    """fold -> `rbp.cv.FoldResult` of each fold of `cv_run` that is done (of `folds`, if given),
    rebuilt from what it logged: metrics, curves, predictions and the model."""
    return {fold: load_fold(run, family) for fold, run in done_folds(cv_run).items()
            if folds is None or fold in folds}


def load_fold(run, family):
    """A FINISHED fold run with its predictions and checkpoint (see `done_folds`) as a FoldResult."""
    import pandas as pd

    from rbp.cv import FoldResult

    store, metrics = client(), run.data.metrics
    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        local = Path(store.download_artifacts(run.info.run_id, "", tmp))
        predictions = pd.read_csv(local / "predictions.csv", dtype={"id": str})
        val = local / "val_predictions.csv"
        val_predictions = pd.read_csv(val, dtype={"id": str}) if val.is_file() else None
        model = family.load(local / "checkpoint")
    training = TrainResult(best_epoch=int(metrics.get("best_epoch", 0)),
                           best_val_auc=metrics.get("best_val_auc", math.nan), history=_history(run.info.run_id),
                           selected={key[len("selected_"):]: value for key, value in metrics.items()
                                     if key.startswith("selected_")})
    return FoldResult(int(run.data.tags["fold"]), training,
                      {key: value for key, value in metrics.items() if key.startswith("test_")},
                      predictions, model, metrics.get("fold_seconds", math.nan), val_predictions,
                      metrics.get("decision_threshold", 0.5))


def _history(run_id: str) -> list[EpochLog]:
    names = {"train_loss": "train_loss", "val_loss": "val_loss", "val_auc": "val_auc", "lr": "lr",
             "seconds": "epoch_seconds"}
    series = {field: {point.step: point.value for point in client().get_metric_history(run_id, metric)}
              for field, metric in names.items()}
    epochs = sorted(set().union(*series.values()))
    return [EpochLog(epoch, **{field: values.get(epoch, math.nan) for field, values in series.items()})
            for epoch in epochs]
