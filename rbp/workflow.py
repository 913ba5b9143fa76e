"""The jobs of a workflow (workflow/Snakefile): one pipeline run per data set, built by separate processes.

`open_run` checks the inputs, opens the pipeline run, makes the folds (01_preprocess) and opens a CV
run per model; `run_step` executes one notebook of that run (a model notebook for one fold, the
same notebook without a fold to gather the folds, or the compare step); `close_run` ends the pipeline
run. Each job writes a small JSON file, the workflow's target, only after MLflow holds what it did,
and a job whose work MLflow already holds does nothing. Runs are opened without a process's tags, so
that no job takes another's open run for one left behind by a dead process.

What a workflow config means (its data sets, each one's model notebooks) is `rbp.workflow_config`,
which the Snakefile imports at every snakemake start without MLflow, papermill or the data code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rbp import tracking
from rbp.config import claim_run_dir, new_run_name, resolve
from rbp.data import Folds
from rbp.errors import RbpError
from rbp.families import NOTEBOOK_FAMILY, make_family
from rbp.kernels import THREAD_VARIABLES
from rbp.params import Params, from_dict, load_params
from rbp.pipeline import PipelineError, check_inputs, execute_notebook, log_report, notebook_parameters, run_values
from rbp.tracking import resume
from rbp.workflow_config import model_notebooks, workflow_steps


def _write(path: str | Path, record: dict) -> None:
    """The job's target, written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(path)


RUN_KEYS = ("run_id", "run_name", "run_dir", "dataset", "params")  # what `open_run` writes


def _read(path: str | Path, keys: tuple[str, ...] = ("run_id",)) -> dict:
    """A job's JSON target, with the `keys` it must hold."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RbpError(f"{path}: not a pipeline run written by `rbp workflow open` ({exc})") from None
    missing = [key for key in keys if not isinstance(record, dict) or key not in record]
    if missing:
        raise RbpError(f"{path}: not a pipeline run written by `rbp workflow open` (no {', '.join(missing)}); "
                       "give the run.json that `rbp workflow open --out` wrote")
    return record


def open_run(params_file: str | Path | None, overrides: list[str] | None, out: str | Path, echo=print) -> dict:
    """A pipeline run for one data set's jobs: inputs checked, the run opened, the folds made, a CV
    run opened per model (so that fold jobs started side by side find one, not make several)."""
    params = load_params(resolve(params_file) if params_file else None, overrides)
    if "01_preprocess" not in params.notebooks:  # every job reads the folds it makes
        params = from_dict({**params.to_dict(), "notebooks": ["01_preprocess", *params.notebooks]})
    if params.sweep.lengths:
        raise RbpError("sweep.lengths: the workflow runs models at one window length; run a length sweep "
                       "with `rbp run`")
    data = check_inputs(params)
    run = tracking.open_pipeline_run(params, data, params_file, echo, orchestrator="workflow")
    echo(f"pipeline run {run.run_name} ({run.run_id}) in experiment '{params.dataset_name}'; outputs in {run.run_dir}")
    record = {"run_id": run.run_id, "run_name": run.run_name, "run_dir": str(run.run_dir),
              "dataset": params.dataset_name, "experiment_id": run.experiment_id, "params": params.to_dict()}
    try:
        _step(params, record, "01_preprocess", None, echo)
        folds = Folds(run.run_dir / "folds")
        for family in model_notebooks(params):
            tracking.CVLogger(make_family(family, params), folds, getattr(params, family), params, run.run_id).open()
    except BaseException:
        tracking.client().set_terminated(run.run_id, "FAILED")  # no job will use it: the next attempt opens another
        raise
    _write(out, record)
    return record


def _step(params: Params, record: dict, notebook: str, fold: int | None, echo) -> None:
    run_dir = Path(record["run_dir"])
    values = {**run_values(params, record["run_id"], run_dir), "fold": fold}
    stem = notebook + (f"-fold{fold}" if fold is not None else "")
    seconds = execute_notebook(notebook, run_dir / f"{stem}.ipynb", notebook_parameters(notebook, params, **values),
                               record["run_id"], echo)
    if fold is None:
        tracking.mark_step_done(record["run_id"], notebook, seconds)


def _done(params: Params, record: dict, notebook: str, fold: int | None) -> bool:
    """Whether MLflow already holds what this step makes."""
    run = tracking.client().get_run(record["run_id"])
    if notebook in resume.steps_done(run):
        return True
    family = NOTEBOOK_FAMILY.get(notebook)
    if fold is None or family is None:
        return False
    cv = resume.find_cv_run(record["run_id"], resume.cv_run_name(family, None))
    return cv is not None and fold in resume.done_folds(cv)


def run_step(run_file: str | Path, notebook: str, out: str | Path, fold: int | None = None,
             threads: int | None = None, echo=print) -> dict:
    """Execute one notebook of a workflow's pipeline run (`fold`: that fold of a model notebook only),
    unless MLflow holds its result already; `threads`: the job's CPU threads (its kernel's too)."""
    record = _read(run_file, RUN_KEYS)
    params = from_dict(record["params"], f"{run_file}: params")
    if notebook not in workflow_steps(params):
        raise RbpError(f"notebook: {notebook} is not a workflow step of pipeline run {record['run_name']} "
                       f"({', '.join(workflow_steps(params))})")
    if fold is not None and notebook not in NOTEBOOK_FAMILY:
        raise RbpError(f"fold: {notebook} is not a model notebook; only a model runs fold by fold")
    if threads:
        for name in THREAD_VARIABLES:  # read by torch and numpy as the kernel starts
            os.environ[name] = str(threads)
    tracking.use_experiment(record["dataset"])
    tracking.close_stale_runs(echo)  # fold runs of jobs that died (never those of live jobs)
    what = notebook + (f", fold {fold}" if fold is not None else "")
    if _done(params, record, notebook, fold):
        echo(f"  {record['run_name']}: {what} finished before, kept")
    else:
        _step(params, record, notebook, fold, echo)
    result = {"run_id": record["run_id"], "notebook": notebook, "fold": fold}
    if fold is None and notebook in NOTEBOOK_FAMILY:
        cv = resume.find_cv_run(record["run_id"], resume.cv_run_name(NOTEBOOK_FAMILY[notebook], None))
        if cv is None or cv.info.status != "FINISHED":
            raise PipelineError(f"{notebook}: the CV run of pipeline run {record['run_name']} did not finish")
        result.update(cv_run_id=cv.info.run_id, mean_test_auc=cv.data.metrics.get("mean_test_auc"))
    _write(out, result)
    return result


def close_run(run_file: str | Path, out: str | Path, echo=print) -> dict:
    """End a workflow's pipeline run FINISHED once its steps are; returns what the target records."""
    record = _read(run_file, RUN_KEYS)
    params = from_dict(record["params"], f"{run_file}: params")
    tracking.use_experiment(record["dataset"])
    client = tracking.client()
    done = resume.steps_done(client.get_run(record["run_id"]))
    missing = [name for name in workflow_steps(params) if name not in done]
    if missing:
        raise PipelineError(f"pipeline run {record['run_name']}: {', '.join(missing)} not finished")
    client.set_terminated(record["run_id"], "FINISHED")
    echo(f"pipeline run {record['run_name']} ({record['run_id']}) finished")
    result = {key: record[key] for key in ("run_id", "run_name", "dataset", "experiment_id")}
    _write(out, result)
    return result


def leaderboard_job(entries: list[str], out: str | Path | None = None, output_dir: str | Path = "outputs",
                    echo=print) -> dict:
    """The leaderboard notebook over pipeline runs (`entries`: targets of `close_run`, run ids or
    names), its executed notebook and HTML report logged to its run in the `leaderboard` experiment."""
    from rbp.leaderboard import EXPERIMENT

    runs = [_read(entry)["run_id"] if entry.endswith(".json") else entry for entry in entries]
    tracking.connect()
    runs = tracking.find_pipeline_runs(runs)  # an unknown run is refused before anything is made
    tracking.use_experiment(EXPERIMENT)
    run_dir = claim_run_dir(resolve(output_dir), new_run_name(EXPERIMENT))
    output = run_dir / "08_leaderboard.ipynb"
    execute_notebook("08_leaderboard", output, {"leaderboard_runs": runs, "run_dir": str(run_dir)}, None, echo)
    run = tracking.find_run(EXPERIMENT, run_dir.name)
    tracking.log_notebook(run.info.run_id, output)
    report = log_report(output, run.info.run_id)
    echo(f"  leaderboard: {report}")
    result = {"run_id": run.info.run_id, "run_name": run_dir.name, "report": str(report), "pipeline_runs": runs}
    if out:
        _write(out, result)
    return result
