"""A leaderboard across data sets: the models of many pipeline runs (one per data set) side by side on
their test ROC AUC over folds, and its record as a run of the `leaderboard` experiment.

The rank within a data set is by test ROC AUC, for reading; the model to use there is the one chosen
on validation (`chosen`), never the test rank, which would pick the model with the luckiest folds.

Plain tables and figures: `rbp.tracking` reads the rows (`leaderboard_rows`) and logs the result
(`log_leaderboard`).
"""

from __future__ import annotations

import re

import pandas as pd

from rbp.config import slug
from rbp.metrics import format_mean_std
from rbp.plots.leaderboard import says_synthetic

EXPERIMENT = "leaderboard"
FIGURES = ("mean_test_auc", "std_test_auc", "n_folds", "mean_best_val_auc")  # read from each CV run
COLUMNS = ["dataset", "synthetic", "model", "family", *FIGURES, "rank", "chosen", "pipeline_run",
           "pipeline_run_id", "cv_run_id"]


def as_list(values) -> list[str]:
    """papermill or a YAML file may give one name as a plain string."""
    return [values] if isinstance(values, str) else list(values or [])


def leaderboard_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (data set, model) of `rows` (`rbp.tracking.leaderboard_rows`: each FINISHED CV run
    under the pipeline runs, with its mean and std test ROC AUC over folds, folds, mean validation AUC
    `mean_best_val_auc`), with `rank` in its data
    set by mean test ROC AUC (1 = highest; ties share the better rank: 1, 1, 3) and `chosen`: the highest mean
    validation AUC of its data set (the first in table order on a tie; none without validation figures).

    A data set shown by two pipeline runs gets the run's name added. `attrs["left_out"]` (kept from
    `rows`) says which CV runs were not FINISHED and which pipeline runs had none."""
    table = rows.copy()
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
    table.attrs["left_out"] = list(rows.attrs.get("left_out", []))
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
    keys = [slug(row.model, "_") if repeated else row.family
            for row, repeated in zip(table.itertuples(), twice, strict=True)]
    return {_metric_name(f"test_auc.{dataset}.{key}"): float(value)
            for dataset, key, value in zip(table.dataset, keys, table.mean_test_auc, strict=True) if pd.notna(value)}
