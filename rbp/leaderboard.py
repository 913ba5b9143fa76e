"""A leaderboard across data sets: the models of many pipeline runs (one per data set) side by side on
their test ROC AUC over folds, and its record as a run of the `leaderboard` experiment.

The rank within a data set is by test ROC AUC, for reading; the model to use there is the one chosen
on validation (`chosen`), never the test rank, which would pick the model with the luckiest folds.

A tracking-layer module: it reads and writes MLflow (through `rbp.runs` and `rbp.tracking`).
"""

from __future__ import annotations

import math
import re

import mlflow
import pandas as pd

from rbp import tracking
from rbp.config import new_run_name
from rbp.errors import RbpError
from rbp.metrics import format_mean_std
from rbp.plots.leaderboard import says_synthetic
from rbp.runs import client, find_cv_runs, find_pipeline_run, get_run, latest_pipeline_run, run_metrics, unique_labels

EXPERIMENT = "leaderboard"
FIGURES = ("mean_test_auc", "std_test_auc", "n_folds", "mean_best_val_auc")  # read from each CV run
COLUMNS = ["dataset", "synthetic", "model", "family", *FIGURES, "rank", "chosen", "pipeline_run",
           "pipeline_run_id", "cv_run_id"]


def _as_list(values) -> list[str]:
    """papermill or a YAML file may give one name as a plain string."""
    return [values] if isinstance(values, str) else list(values or [])


def find_pipeline_runs(runs: list[str] | None = None, datasets: list[str] | None = None) -> list[str]:
    """The ids of the pipeline runs to show, in the order given, each once: each of `runs` is a
    pipeline run's id or name, each of `datasets` an experiment whose latest pipeline run is taken."""
    runs, datasets = _as_list(runs), _as_list(datasets)
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


def leaderboard_table(pipeline_run_ids: list[str]) -> pd.DataFrame:
    """One row per (data set, model): each FINISHED CV run under the pipeline runs, with its mean and
    std test ROC AUC over folds, folds, mean validation AUC (`mean_best_val_auc`), `rank` in its data
    set by mean test ROC AUC (1 = highest; ties share the better rank: 1, 1, 3) and `chosen`: the highest mean
    validation AUC of its data set (the first in table order on a tie; none without validation figures).

    A data set comes from its CV runs' `dataset` tag (else the experiment's name); one shown by two
    pipeline runs gets the run's name added. `attrs["left_out"]` says which CV runs were not FINISHED
    and which pipeline runs had none."""
    rows, left_out = [], []
    for pipeline_run_id in _as_list(pipeline_run_ids):
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
                         "synthetic": run.tags.get("synthetic") == "true", "model": label, "family": run.family,
                         **{key: metrics.get(key, math.nan) for key in FIGURES},
                         "pipeline_run": name, "pipeline_run_id": pipeline_run_id, "cv_run_id": run.run_id})
    if not rows:
        raise RbpError("leaderboard: no FINISHED CV run under the pipeline runs "
                       f"{', '.join(_as_list(pipeline_run_ids))}: " + "; ".join(left_out))
    table = pd.DataFrame(rows)
    shared = table.groupby("dataset").pipeline_run_id.transform("nunique") > 1
    table["dataset"] = table.dataset.where(~shared, table.dataset + " [" + table.pipeline_run + "]")
    by_dataset = table.groupby("dataset", sort=False)
    table["synthetic"] = by_dataset.synthetic.transform("any")
    table["rank"] = by_dataset.mean_test_auc.rank(ascending=False, method="min").astype("Int64")
    chosen = table.dropna(subset=["mean_best_val_auc"]).groupby("dataset", sort=False).mean_best_val_auc.idxmax()
    table["chosen"] = table.index.isin(chosen)
    order = {dataset: i for i, dataset in enumerate(table.dataset.unique())}
    table = table.sort_values(["dataset", "rank", "model"], key=lambda c: c.map(order) if c.name == "dataset" else c,
                              ignore_index=True)[COLUMNS]
    table.attrs["left_out"] = left_out
    return table


def format_leaderboard(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """For reading: a row per model (best mean rank first), a column per data set (" (synthetic)" marks
    a synthetic one) holding "mean ± std (rank)" of the test ROC AUC over folds, then the model's mean
    rank over the data sets it ran on and the data sets whose validation chose it."""
    headers = {row.dataset: row.dataset + (" (synthetic)" if says_synthetic(row.dataset, row.synthetic) else "")
               for row in table.itertuples()}
    cells = ["–" if pd.isna(row.mean_test_auc) else f"{format_mean_std(row.mean_test_auc, row.std_test_auc, digits)} "
             f"({row.rank})" for row in table.itertuples()]
    wide = (table.assign(cell=cells).pivot(index="model", columns="dataset", values="cell")
            .reindex(columns=list(headers)).fillna("–").rename(columns=headers))
    mean_rank = table.groupby("model")["rank"].mean().astype(float).sort_values(kind="stable")
    wide = wide.loc[mean_rank.index]
    wide["mean rank"] = [f"{rank:g}" for rank in mean_rank.round(2)]
    chosen = table[table.chosen].groupby("model").dataset.agg(", ".join)
    wide["chosen on validation in"] = chosen.reindex(wide.index).fillna("–")
    wide.columns.name = None
    return wide


def _metric_name(name: str) -> str:
    """MLflow takes letters, digits, _ - . space (and /, which would read as a path) in a metric name."""
    return re.sub(r"[^A-Za-z0-9_.\- ]", "_", name)


def leaderboard_metrics(table: pd.DataFrame) -> dict[str, float]:
    """`test_auc.<dataset>.<family>`: each row's mean test ROC AUC. A family with two rows in a data set
    (DNABERT pretrained and from scratch) is named by its model label there instead."""
    twice = table.duplicated(["dataset", "family"], keep=False)
    keys = [re.sub(r"[^a-z0-9]+", "_", row.model.lower()).strip("_") if repeated else row.family
            for row, repeated in zip(table.itertuples(), twice, strict=True)]
    return {_metric_name(f"test_auc.{dataset}.{key}"): float(value)
            for dataset, key, value in zip(table.dataset, keys, table.mean_test_auc, strict=True) if pd.notna(value)}


def log_leaderboard(table: pd.DataFrame, figure, pipeline_run_ids: list[str], notebook_path=None,
                    run_name: str | None = None) -> str:
    """A run of the `leaderboard` experiment, named `leaderboard-<YYYYmmdd-HHMMSS>` unless `run_name`
    is given: the data sets and pipeline run ids as params, `leaderboard_metrics` as metrics, the table
    (`leaderboard.csv`), the figure (`figures/leaderboard.png`), what was left out (`left_out.txt`) and
    the notebook when given. Returns its run id."""
    tracking.use_experiment(EXPERIMENT)
    datasets = list(dict.fromkeys(table.dataset))
    tags = tracking.house_tags(", ".join(datasets), model_family="leaderboard")
    with tracking.run(run_name or new_run_name(EXPERIMENT), tags=tags) as active:
        mlflow.log_params({"datasets": ", ".join(datasets), "pipeline_run_ids": ", ".join(_as_list(pipeline_run_ids))})
        mlflow.log_metrics(leaderboard_metrics(table))
        tracking.log_frame(table, "leaderboard.csv")
        mlflow.log_figure(figure, "figures/leaderboard.png")
        if table.attrs.get("left_out"):
            mlflow.log_text("\n".join(table.attrs["left_out"]) + "\n", "left_out.txt")
        if notebook_path:
            mlflow.log_artifact(str(notebook_path), "notebooks")
    return active.info.run_id
