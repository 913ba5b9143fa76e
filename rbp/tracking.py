"""MLflow: one store under the project root, one experiment per data set, runs with house tags.

This is the only module (with rbp.pipeline) that imports MLflow; the core runs without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from rbp.config import project_root


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if the user set one (a team server), else the project's sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (
        f"sqlite:///{project_root() / 'mlruns' / 'mlflow.db'}"
    )


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str | None = None) -> str | None:
    """Artifacts of a local sqlite store live beside it in `artifacts/`; a server decides its own."""
    db = _sqlite_path(uri or tracking_uri())
    return (db.parent / "artifacts").as_uri() if db else None


def use_experiment(name: str) -> str:
    """Point this process at the store and make `name` the active experiment; returns its id.

    Called first in every process and notebook kernel that logs, so that nested runs land in the
    experiment of their parent (not in the working directory's default store).
    """
    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db:
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root(uri)
        experiment_id = client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=project_root(),
                             capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() if out.returncode == 0 else ""
        if commit:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=project_root(), capture_output=True, text=True, timeout=10)
            return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def house_tags(dataset: str, data_sha256: str | None = None, **extra) -> dict:
    """The tags every run carries (design.md): dataset, data_sha256, git_commit, and the rest."""
    tags = {"dataset": dataset, "git_commit": git_commit(), **extra}
    if data_sha256:
        tags["data_sha256"] = data_sha256
    return {k: str(v) for k, v in tags.items() if v is not None}


@contextmanager
def run(name: str, parent_run_id: str | None = None, run_id: str | None = None, tags: dict | None = None):
    """Start (or, with `run_id`, resume) a run, nested under `parent_run_id` when given.

    The run ends FINISHED, or FAILED if the block raises.
    """
    if run_id:
        active = mlflow.start_run(run_id=run_id, tags=tags)
    else:
        active = mlflow.start_run(run_name=name, parent_run_id=parent_run_id, tags=tags)
    try:
        yield active
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def log_json(obj, artifact_file: str) -> None:
    mlflow.log_text(json.dumps(obj, indent=2, default=str) + "\n", artifact_file)


def log_frame(frame, artifact_file: str) -> None:
    """A DataFrame as a CSV artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_file).parent) if "/" in artifact_file else None)


def child_runs(parent_run_id: str, experiment_ids: list[str] | None = None):
    """Runs whose parent is `parent_run_id`, as a DataFrame (mlflow.search_runs)."""
    if experiment_ids is None:
        experiment_ids = [MlflowClient().get_run(parent_run_id).info.experiment_id]
    return mlflow.search_runs(experiment_ids=experiment_ids,
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
