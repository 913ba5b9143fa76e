"""Runs from start to end: the house tags every run carries, a run started and ended as its block
ends, the runs a dead process left RUNNING, and the opening of a pipeline run (new, resumed, or for
a workflow's jobs)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml
from mlflow.entities import Metric, Param
from mlflow.tracking.context.registry import resolve_tags

from rbp.config import claim_run_dir, new_run_name, project_root, resolve
from rbp.tracking.store import client, use_experiment


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


def _stat(pid: int) -> list[str]:
    """Linux's /proc/<pid>/stat fields after the command name (state first), or [] elsewhere."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> str:
    """When process `pid` started (Linux: clock ticks since boot), or "" where that cannot be read.
    With the pid it tells a process apart from a later one that got the same pid."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def process_tags() -> dict:
    """Where a run runs: host, process id and its start, so a later start can tell it was killed."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": str(pid), "process_start": _process_start(pid)}


def _alive(tags: dict) -> bool:
    try:
        pid = int(tags["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (KeyError, ValueError, PermissionError, OSError):
        return True  # no pid recorded, or a process of another user: leave the run alone
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):  # exited, not yet reaped
        return False
    start = tags.get("process_start")
    return not start or len(fields) <= 19 or fields[19] == start


def close_stale_runs(echo=print) -> list[str]:
    """Mark KILLED every run left RUNNING by a process of this host that no longer exists (a job
    killed with SIGKILL, or by the out-of-memory killer, cannot end its own runs). Returns their names."""
    store, host, closed = client(), socket.gethostname(), []
    experiments = [e.experiment_id for e in store.search_experiments()]
    if not experiments:
        return closed
    for run in store.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=5000):
        tags = run.data.tags
        if tags.get("host") == host and not _alive(tags):
            store.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_name)
    if closed:
        echo(f"marked KILLED {len(closed)} run(s) whose process had died without ending them: "
             + ", ".join(sorted(closed)))
    return closed


def house_tags(dataset: str, data_sha256: str | None = None, **extra) -> dict:
    """The tags every run carries: dataset, data_sha256, git_commit, where it runs, and the rest."""
    tags = {"dataset": dataset, "git_commit": git_commit(), **process_tags(), **extra}
    if data_sha256:
        tags["data_sha256"] = data_sha256
    return {k: str(v) for k, v in tags.items() if v is not None}


@contextmanager
def active_run(name: str | None = None, parent_run_id: str | None = None, run_id: str | None = None,
               tags: dict | None = None):
    """A run active in this process for the block: a new one (nested under `parent_run_id` when
    given), or with `run_id` an existing one reopened. It ends FINISHED, KILLED on an interrupt, or
    FAILED if the block raises."""
    if run_id:
        started = mlflow.start_run(run_id=run_id, tags=tags)
    else:
        started = mlflow.start_run(run_name=name, parent_run_id=parent_run_id, tags=tags)
    try:
        yield started
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def close_descendants(run_id: str, status: str = "FAILED") -> list[str]:
    """End every run still RUNNING below `run_id` (a notebook kernel that died cannot end its own)."""
    store = client()
    experiment_id = store.get_run(run_id).info.experiment_id
    closed, parents = [], [run_id]
    while parents:
        parent = parents.pop()
        for child in store.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}'"):
            parents.append(child.info.run_id)
            if child.info.status == "RUNNING":
                store.set_terminated(child.info.run_id, status)
                closed.append(child.info.run_name)
    return closed


# ------------------------------------------------------------------------------------ pipeline runs
STEP_TAG = "step/"  # a pipeline run's tag per finished notebook, e.g. step/03_lstm_cv = "done in 412 s"
RESUMED = "resumed"  # tag on a reopened run: how many times it was resumed


def times_resumed(run) -> int:
    try:
        return int(run.data.tags.get(RESUMED, 0))
    except ValueError:
        return 0


@dataclass
class PipelineRun:
    """A pipeline run as its driver knows it: the MLflow run and the folder its notebooks go to."""

    run_id: str
    run_name: str
    run_dir: Path
    experiment_id: str


def open_pipeline_run(params, data, params_file, echo=print, orchestrator: str | None = None) -> PipelineRun:
    """The opening of every pipeline run: its data set's experiment, the runs dead processes left
    RUNNING marked KILLED, a new output folder, the run created RUNNING with the house tags, and its
    params and data counts logged (a failure there ends it FAILED).

    `rbp run` then makes it the active run of its process (`active_run(run_id=...)`). A workflow's
    run (`orchestrator="workflow"`) carries no process's tags, so that no job takes it for one a dead
    process left: the workflow's last job ends it."""
    from rbp.train import resolve_device  # torch: imported when a run opens, not with the package

    dataset = params.dataset_name
    experiment_id = use_experiment(dataset)
    close_stale_runs(echo)
    run_dir = claim_run_dir(resolve(params.output_dir), new_run_name(dataset))
    tags = house_tags(dataset, data.data_sha256, model_family="pipeline", orchestrator=orchestrator,
                      synthetic=str(params.synthetic).lower(), device=str(resolve_device(params.device)),
                      params_file=str(params_file or "schema defaults"))
    if orchestrator:
        tags = {key: value for key, value in tags.items() if key not in process_tags()}
    else:  # what `mlflow.start_run` adds to a run of this process: user, source, its git commit
        tags = resolve_tags(tags)
    run_id = client().create_run(experiment_id, run_name=run_dir.name, tags=tags).info.run_id
    try:
        log_run_params(run_id, params, data)
    except BaseException:
        client().set_terminated(run_id, "FAILED")
        raise
    return PipelineRun(run_id, run_dir.name, run_dir, experiment_id)


def reopen_pipeline_run(previous, params, echo=print) -> PipelineRun:
    """A pipeline run that was killed or failed, made ready to resume: its experiment active, the
    runs its dead process left RUNNING marked KILLED, its output folder in place."""
    experiment_id = use_experiment(params.dataset_name)
    close_stale_runs(echo)  # what the killed process left RUNNING is KILLED now
    run_dir = resolve(params.output_dir) / previous.info.run_name
    return PipelineRun(previous.info.run_id, previous.info.run_name, run_dir, experiment_id)


def resumed_tags(previous) -> dict:
    """The tags of a run reopened by this process: where it runs now, and how often it was resumed."""
    return {**process_tags(), RESUMED: str(times_resumed(previous) + 1)}


def log_run_params(run_id: str, params, data) -> None:
    """What a pipeline run is run with: its params (also as params.yaml, which `--resume` reads) and counts."""
    store, now = client(), int(time.time() * 1000)
    counts = {"n_sequences": len(data.table), "n_positives": int(data.table.label.sum()),
              "n_negatives": int((data.table.label == 0).sum())}
    store.log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in counts.items()])
    logged = [Param(key, str(value)) for key, value in params.flat().items()]
    for start in range(0, len(logged), 100):  # MLflow takes at most 100 params per batch
        store.log_batch(run_id, params=logged[start:start + 100])
    store.log_text(run_id, yaml.safe_dump(params.to_dict(), sort_keys=False), "params.yaml")


def mark_step_done(run_id: str, stem: str, seconds: float) -> None:
    """Tag a pipeline run's finished notebook, which a resumed run or the workflow then keeps."""
    client().set_tag(run_id, f"{STEP_TAG}{stem}", f"done in {seconds:.0f} s")
