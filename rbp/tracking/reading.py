"""Reading runs back: the pipeline run of a name or id, the CV runs of a pipeline run, their fold
metrics, out-of-fold predictions and per-epoch histories as `rbp.records.ModelResults`, which the
comparison, the length sweep, the interpretation and the leaderboard take.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException

from rbp.errors import RbpError
from rbp.families import FAMILIES
from rbp.leaderboard import FIGURES, as_list
from rbp.metrics import TEST_METRICS
from rbp.records import CVRun, ModelResults, in_table_order, unique_labels
from rbp.tracking.store import client, quiet_downloads

NOT_MODELS = {"pipeline", "data", "predict", "variants", "leaderboard"}  # model_family tags of runs that train no model


def get_run(run_id: str, what: str):
    try:
        return client().get_run(run_id)
    except MlflowException:
        raise RbpError(f"{what} {run_id!r}: no such run in the MLflow store {client().tracking_uri}") from None


def _search(experiment_ids: list[str], filter_string: str, **kwargs) -> list:
    return list(client().search_runs(experiment_ids, filter_string, max_results=5000, **kwargs))


def find_run(experiment: str, run_name: str):
    """The run named `run_name` in `experiment` (the latest, if several)."""
    experiment_id = client().get_experiment_by_name(experiment).experiment_id
    return _search([experiment_id], f"attributes.run_name = '{run_name}'",
                   order_by=["attributes.start_time DESC"])[0]


def latest_pipeline_run(experiment: str) -> str:
    """The id of the most recently started pipeline run (tag model_family = pipeline) of `experiment`."""
    found = client().get_experiment_by_name(experiment)
    if found is None:
        raise RbpError(f"MLflow experiment {experiment!r} does not exist in {client().tracking_uri}: "
                       "set dataset (or compare_run_id) to the experiment of the run to compare")
    runs = _search([found.experiment_id], "tags.model_family = 'pipeline'",
                   order_by=["attributes.start_time DESC"])
    if not runs:
        raise RbpError(f"MLflow experiment {experiment!r} has no pipeline run (tag model_family = "
                       "pipeline): run `rbp run` first, or pass compare_cv_run_ids")
    return runs[0].info.run_id


def find_pipeline_run(entry: str, what: str):
    """The pipeline run whose id or run name is `entry`; `what` (the parameter it came from) heads
    the error when there is none, or several share the name."""
    try:
        run = client().get_run(entry)
    except MlflowException:  # not a run id: a run name
        run = None
    if run is not None:
        family = run.data.tags.get("model_family", "none")
        if family != "pipeline":
            raise RbpError(f"{what}: run {run.info.run_name} ({entry}) is not a pipeline run "
                           f"(model_family tag: {family}); give a pipeline run")
        return run
    pipelines = _search([e.experiment_id for e in client().search_experiments()], "tags.model_family = 'pipeline'",
                        order_by=["attributes.start_time DESC"])
    named = [run for run in pipelines if run.info.run_name == entry]
    if len(named) > 1:
        raise RbpError(f"{what}: {len(named)} pipeline runs are named {entry!r} "
                       f"({', '.join(run.info.run_id for run in named)}): give the id of the one you mean")
    if not named:
        latest = ", ".join(run.info.run_name for run in pipelines[:5]) or "none"
        raise RbpError(f"{what}: {entry!r} is neither the id nor the name of a pipeline run in "
                       f"{client().tracking_uri} (the latest pipeline runs: {latest})")
    return named[0]


def cv_run(run_id: str) -> CVRun:
    """The CV run of an id, as plain data."""
    return _cv_run(client().get_run(run_id))


def _cv_run(run) -> CVRun:
    return CVRun(run.info.run_id, run.info.run_name, run.info.experiment_id, run.info.status,
                 dict(run.data.tags))


def _is_cv_run(run) -> bool:
    family = run.data.tags.get("model_family")
    return bool(family) and family not in NOT_MODELS and "fold" not in run.data.tags


def find_cv_runs(experiment: str | None = None, pipeline_run_id: str | None = None,
                 cv_run_ids: list[str] | None = None) -> list[CVRun]:
    """The CV runs to compare, in table order (the registry's order of families, then the others).

    `cv_run_ids` wins; else the CV runs under `pipeline_run_id`; else those under the latest
    pipeline run of `experiment`. A CV run is a child run whose model_family is a model (not
    pipeline or data), e.g. `lstm_cv` or `dnabert_cv`.
    """
    if cv_run_ids:
        if isinstance(cv_run_ids, str):
            cv_run_ids = [cv_run_ids]
        runs = [get_run(run_id, "compare_cv_run_ids: run") for run_id in cv_run_ids]
        for run in runs:
            if not _is_cv_run(run):
                family = run.data.tags.get("model_family", "none")
                raise RbpError(f"compare_cv_run_ids: run {run.info.run_name} ({run.info.run_id}) is not a "
                               f"CV run (model_family tag: {family}); pass the ids of the *_cv runs, or "
                               "a pipeline run as compare_run_id")
        return in_table_order([_cv_run(run) for run in runs])
    if pipeline_run_id is None:
        if not experiment:
            raise RbpError("nothing to compare: give an experiment, a pipeline run id or CV run ids")
        pipeline_run_id = latest_pipeline_run(experiment)
    pipeline = get_run(pipeline_run_id, "compare_run_id: run")
    children = child_runs(pipeline_run_id, pipeline.info.experiment_id)
    cv_runs = [_cv_run(run) for run in children if _is_cv_run(run)]
    if not cv_runs:
        others = ", ".join(sorted(run.info.run_name for run in children)) or "none"
        notebooks = ", ".join(info.notebook for info in FAMILIES.values())
        raise RbpError(f"pipeline run {pipeline.info.run_name} ({pipeline_run_id}) has no CV runs "
                       f"(child runs named *_cv with a model_family tag; its child runs: {others}): "
                       f"add a model notebook ({notebooks}) to its notebooks, or pass compare_run_id "
                       "for another pipeline run")
    return in_table_order(cv_runs)


def artifact_frame(run_id: str, path: str) -> pd.DataFrame | None:
    """A CSV artifact of a run, or None when the run did not log it."""
    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        try:
            local = client().download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError):
            return None
        return pd.read_csv(local, dtype={"id": str})


def child_runs(run_id: str, experiment_id: str) -> list:
    """The runs directly under run `run_id`, the latest started first."""
    return _search([experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", order_by=["attributes.start_time DESC"])


def latest_fold_runs(cv_run_id: str, experiment_id: str) -> dict[int, object]:
    """fold -> the latest FINISHED fold run under a CV run (a resumed run may have redone a fold whose
    first run was killed), in fold order."""
    latest = {}
    for run in child_runs(cv_run_id, experiment_id):
        if "fold" in run.data.tags and run.info.status == "FINISHED":
            latest.setdefault(int(run.data.tags["fold"]), run)
    return dict(sorted(latest.items()))


def fold_runs(cv_run: CVRun) -> list:
    """The FINISHED fold runs of a CV run, one per fold, in fold order."""
    return list(latest_fold_runs(cv_run.run_id, cv_run.experiment_id).values())


FOLD_COLUMNS = ["fold", "best_epoch", "best_val_auc", *TEST_METRICS]


def load_fold_metrics(cv_run: CVRun, runs: list | None = None) -> pd.DataFrame:
    """One row per fold: from the fold runs' metrics, else the CV run's fold_metrics.csv.

    `best_val_auc` (the validation AUC of the chosen epoch) is what the comparison chooses the best
    model on; it is NaN for a run without a validation split (tag selection = final)."""
    runs = fold_runs(cv_run) if runs is None else runs
    rows = [{"fold": int(run.data.tags["fold"]),
             **{key: run.data.metrics.get(key, math.nan) for key in FOLD_COLUMNS[1:]}}
            for run in runs if "test_auc" in run.data.metrics]
    frame = pd.DataFrame(rows) if rows else artifact_frame(cv_run.run_id, "fold_metrics.csv")
    if frame is None or frame.empty:
        raise RbpError(f"CV run {cv_run.run_name} ({cv_run.run_id}, {cv_run.status}) has no fold results: "
                       "neither fold runs with test_auc nor fold_metrics.csv; did it finish?")
    frame = frame.reindex(columns=FOLD_COLUMNS)
    frame["fold"] = frame["fold"].astype(int)
    frame["folds_sha256"] = cv_run.folds_sha256
    return frame.sort_values("fold", ignore_index=True)


def load_oof_predictions(cv_run: CVRun, runs: list | None = None) -> pd.DataFrame | None:
    """Pooled out-of-fold predictions: the CV run's oof_predictions.csv, else the folds' predictions."""
    frame = artifact_frame(cv_run.run_id, "oof_predictions.csv")
    if frame is None:
        runs = fold_runs(cv_run) if runs is None else runs
        parts = [artifact_frame(run.info.run_id, "predictions.csv") for run in runs]
        parts = [part for part in parts if part is not None]
        frame = pd.concat(parts, ignore_index=True) if parts else None
    return frame


def load_history(cv_run: CVRun, runs: list | None = None, metric: str = "val_auc") -> pd.DataFrame:
    """`metric` per epoch of each fold run (step = epoch): columns fold, epoch, <metric>."""
    runs = fold_runs(cv_run) if runs is None else runs
    rows = [{"fold": int(run.data.tags["fold"]), "epoch": point.step, metric: point.value}
            for run in runs for point in client().get_metric_history(run.info.run_id, metric)]
    return pd.DataFrame(rows, columns=["fold", "epoch", metric])


def load_results(cv_runs: list[CVRun]) -> dict[str, ModelResults]:
    results = {}
    for label, cv_run in unique_labels(cv_runs).items():
        runs = fold_runs(cv_run)
        results[label] = ModelResults(label, cv_run, load_fold_metrics(cv_run, runs),
                                      load_oof_predictions(cv_run, runs), load_history(cv_run, runs))
    return results


def run_metrics(run_id: str) -> dict[str, float]:
    """The metrics a run logged (for a CV run: mean_test_*, std_test_*, n_folds, …)."""
    return dict(client().get_run(run_id).data.metrics)


def cv_run_figures(pipeline_run_id: str) -> dict[CVRun, dict[str, float]]:
    """Each CV run under a pipeline run, with the metrics it logged (`mean_test_auc`, `n_folds`, …)."""
    return {cv: run_metrics(cv.run_id) for cv in find_cv_runs(pipeline_run_id=pipeline_run_id)}


# ------------------------------------------------------------------------------------ leaderboard
def find_pipeline_runs(runs: list[str] | None = None, datasets: list[str] | None = None) -> list[str]:
    """The ids of the pipeline runs to show, in the order given, each once: each of `runs` is a
    pipeline run's id or name, each of `datasets` an experiment whose latest pipeline run is taken."""
    runs, datasets = as_list(runs), as_list(datasets)
    if not runs and not datasets:
        raise RbpError("leaderboard: nothing to show; give leaderboard_runs (pipeline run ids or names) or "
                       "leaderboard_datasets (experiments: each one's latest pipeline run)")
    found = ([find_pipeline_run(entry, "leaderboard_runs").info.run_id for entry in runs]
             + [_latest_pipeline_run(name) for name in datasets])
    return list(dict.fromkeys(found))


def _latest_pipeline_run(experiment: str) -> str:
    if client().get_experiment_by_name(experiment) is None:
        known = ", ".join(sorted(e.name for e in client().search_experiments())) or "none"
        raise RbpError(f"leaderboard_datasets: no MLflow experiment {experiment!r} in {client().tracking_uri} "
                       f"(experiments: {known})")
    try:
        return latest_pipeline_run(experiment)
    except RbpError:
        raise RbpError(f"leaderboard_datasets: experiment {experiment!r} has no pipeline run (tag model_family = "
                       "pipeline): run `rbp run` on that data set first") from None


def leaderboard_rows(pipeline_run_ids: list[str]) -> pd.DataFrame:
    """One row per FINISHED CV run under the pipeline runs, for `rbp.leaderboard.leaderboard_table`:
    data set (its CV runs' `dataset` tag, else the experiment's name), synthetic, model, family, the
    leaderboard's figures of the CV run, and the runs' names and ids. `attrs["left_out"]` says which
    CV runs were not FINISHED and which pipeline runs had none."""
    rows, left_out = [], []
    for pipeline_run_id in as_list(pipeline_run_ids):
        pipeline = get_run(pipeline_run_id, "leaderboard: pipeline run")
        name = pipeline.info.run_name
        experiment = client().get_experiment(pipeline.info.experiment_id).name
        try:
            cv_runs = find_cv_runs(pipeline_run_id=pipeline_run_id)
        except RbpError:
            left_out.append(f"{experiment}: pipeline run {name} ({pipeline_run_id}) has no CV runs")
            continue
        for run in cv_runs:
            if run.status != "FINISHED":
                left_out.append(f"{run.tags.get('dataset') or experiment}: {run.label} ({run.run_name}, "
                                f"{run.run_id}) is {run.status}, not FINISHED")
        for label, run in unique_labels([run for run in cv_runs if run.status == "FINISHED"]).items():
            metrics = run_metrics(run.run_id)
            rows.append({"dataset": run.tags.get("dataset") or experiment,
                         "synthetic": run.tags.get("synthetic") == "true",
                         "protocol": run.tags.get("protocol") or "cv", "model": label, "family": run.family,
                         **{key: metrics.get(key, math.nan) for key in FIGURES},
                         "pipeline_run": name, "pipeline_run_id": pipeline_run_id, "cv_run_id": run.run_id})
    if not rows:
        raise RbpError("leaderboard: no FINISHED CV run under the pipeline runs "
                       f"{', '.join(as_list(pipeline_run_ids))}: " + "; ".join(left_out))
    rows = pd.DataFrame(rows)
    rows.attrs["left_out"] = left_out
    return rows


def chosen_motifs(table: pd.DataFrame) -> list[dict]:
    """Per data set of a leaderboard table, the top motif its chosen model learned, read from the CV
    run's `interpret/` artifacts (07_interpret): dataset, model, consensus, share, ppm (ACGU rows) and
    match (the known motif it matches, or ""); ppm None where it found none. Data sets whose chosen
    model was never interpreted are left out."""
    import json

    entries = []
    for row in table[table.chosen].itertuples():
        with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
            try:
                local = Path(client().download_artifacts(row.cv_run_id, "interpret", tmp))
            except (MlflowException, OSError):
                continue
            if not (local / "motifs.json").is_file():
                continue
            motifs = json.loads((local / "motifs.json").read_text())["motifs"]
            matches = (pd.read_csv(local / "known_motif_matches.csv") if (local / "known_motif_matches.csv").is_file()
                       else pd.DataFrame())
        entry = {"dataset": row.dataset, "model": row.model, "ppm": None, "consensus": "", "share": 0.0, "match": ""}
        if motifs:
            top = motifs[0]
            own = matches[(matches.motif == top["name"]) & matches.match.astype(bool)] if len(matches) else matches
            entry.update(ppm=top["ppm_ACGU"], consensus=top["consensus"], share=top["share"],
                         match=", ".join(own.known.astype(str).unique()) if len(own) else "")
        entries.append(entry)
    return entries
