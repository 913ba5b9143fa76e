"""Where runs are kept: one store under the project root (or the user's tracking server), one
experiment per data set, marked as one that trains models."""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.tracking import MlflowClient

from rbp.config import project_root


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if the user set one (a tracking server), else the project's sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or project_store()


def project_store() -> str:
    """The project's own store: `mlruns/mlflow.db` under the project root."""
    return f"sqlite:///{project_root() / 'mlruns' / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]).resolve() if uri.startswith("sqlite:///") else None


def artifact_root(uri: str | None = None) -> str | None:
    """Artifacts of a local sqlite store live beside it in `artifacts/`; a server decides its own."""
    db = _sqlite_path(uri or tracking_uri())
    return (db.parent / "artifacts").as_uri() if db else None


def connect() -> str:
    """Point this process at the store (without choosing an experiment); returns its URI."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def client() -> MlflowClient:
    """A client of the store this process points at."""
    return MlflowClient()


# MLflow 3 marks what an experiment is for; ours train models. (Its UI picks the model-training view
# from the URL, `?workflowType=machine_learning`, which the CLI prints.)
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE = "mlflow.note.content"  # a run's or experiment's description in the UI


def _first_opening(uri: str):
    """Held while a process opens a local SQLite store: runs started side by side on a new store would
    each create its tables (and the same experiment); one process at a time does that, the others then
    find them."""
    db = _sqlite_path(uri)
    if not db:
        return nullcontext()
    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(db.parent / ".mlflow.db.lock")


def open_store() -> str:
    """Point this process at the store and open it now (on SQLite: its engine and MLflow's check of the
    schema, about a second), so that the first run logged or read does not wait for it; returns its URI."""
    uri = connect()
    with _first_opening(uri):
        MlflowClient().search_experiments(max_results=1)
    return uri


def use_experiment(name: str) -> str:
    """Point this process at the store and make `name` the active experiment; returns its id.

    Called first in every process and notebook kernel that logs, so that nested runs land in the
    experiment of their parent (not in the working directory's default store).
    """
    uri = connect()
    with _first_opening(uri):
        store = MlflowClient()
        experiment = store.get_experiment_by_name(name)
        if experiment is None:
            root = artifact_root(uri)
            experiment_id = store.create_experiment(name, artifact_location=f"{root}/{name}" if root else None,
                                                    tags={EXPERIMENT_KIND: MODEL_TRAINING})
        else:
            experiment_id = experiment.experiment_id
            if EXPERIMENT_KIND not in experiment.tags:  # made before the kind was set
                store.set_experiment_tag(experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextmanager
def quiet_downloads():
    """No progress bar per small CSV: in a notebook they bury the tables."""
    previous = os.environ.get(_PROGRESS_BAR)
    os.environ[_PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_PROGRESS_BAR, None)
        else:
            os.environ[_PROGRESS_BAR] = previous
