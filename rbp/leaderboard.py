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
FIGURES = ("mean_test_auc", "std_test_auc", "mean_test_auprc", "std_test_auprc", "test_chance_auprc", "n_folds",
           "mean_best_val_auc")  # read from each CV run
COLUMNS = ["dataset", "synthetic", "protocol", "model", "family", *FIGURES, "rank", "rank_auprc", "chosen",
           "pipeline_run", "pipeline_run_id", "cv_run_id"]
METRIC_COLUMNS = {"auc": ("mean_test_auc", "std_test_auc", "rank", "test ROC AUC"),
                  "auprc": ("mean_test_auprc", "std_test_auprc", "rank_auprc", "test AUPRC")}


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
    table["rank_auprc"] = by_dataset.mean_test_auprc.rank(ascending=False, method="min").astype("Int64")
    chosen = table.dropna(subset=["mean_best_val_auc"]).groupby("dataset", sort=False).mean_best_val_auc.idxmax()
    table["chosen"] = table.index.isin(chosen)
    order = {dataset: i for i, dataset in enumerate(table.dataset.unique())}
    table = table.sort_values(["dataset", "rank", "model"], key=lambda c: c.map(order) if c.name == "dataset" else c,
                              ignore_index=True)[COLUMNS]
    table.attrs["left_out"] = list(rows.attrs.get("left_out", []))
    return table


def format_leaderboard(table: pd.DataFrame, digits: int = 4, metric: str = "auc") -> pd.DataFrame:
    """For reading: a row per model (best mean rank first), a column per data set (" (synthetic)" marks
    a synthetic one) holding "mean ± std (rank)" of the test ROC AUC (`metric="auprc"`: AUPRC) over
    folds, or the one figure of a fixed test set, then the model's mean over the data sets it ran on, its
    mean rank there and the data sets whose validation chose it. For AUPRC, a first row gives each data
    set's chance level (the share of binding sites among its test sequences)."""
    mean_key, std_key, rank_key, _ = METRIC_COLUMNS[metric]
    headers = {row.dataset: row.dataset + (" (synthetic)" if says_synthetic(row.dataset, row.synthetic) else "")
               for row in table.itertuples()}
    cells = ["–" if pd.isna(getattr(row, mean_key)) else
             f"{format_mean_std(getattr(row, mean_key), getattr(row, std_key), digits)} ({getattr(row, rank_key)})"
             for row in table.itertuples()]
    wide = (table.assign(cell=cells).pivot(index="model", columns="dataset", values="cell")
            .reindex(columns=list(headers)).fillna("–").rename(columns=headers))
    mean_rank = table.groupby("model")[rank_key].mean().astype(float).sort_values(kind="stable")
    wide = wide.loc[mean_rank.index]
    means = table.groupby("model")[mean_key].mean()
    wide["mean over data sets"] = [f"{means[model]:.{digits}f}" if pd.notna(means[model]) else "–"
                                   for model in wide.index]
    wide["mean rank"] = [f"{rank:g}" for rank in mean_rank.round(2)]
    chosen = table[table.chosen].groupby("model").dataset.agg(", ".join)
    wide["chosen on validation in"] = chosen.reindex(wide.index).fillna("–")
    if metric == "auprc" and "test_chance_auprc" in table:
        chance = table.groupby("dataset", sort=False).test_chance_auprc.first()
        row = {headers[d]: "–" if pd.isna(v) else f"{v:.{digits}f}" for d, v in chance.items()}
        row.update({"mean over data sets": f"{chance.mean():.{digits}f}" if chance.notna().any() else "–",
                    "mean rank": "", "chosen on validation in": ""})
        wide = pd.concat([pd.DataFrame([row], index=["chance (a guess)"]), wide])
    wide.index.name = "model"
    wide.columns.name = None
    return wide


def oriented(wide: pd.DataFrame) -> pd.DataFrame:
    """`format_leaderboard`'s table as it reads best: a column per data set for a few of them; for more
    data sets than models, a row per data set (and a column per model)."""
    if wide.shape[1] - 3 > len(wide):  # less the mean, the mean rank and the choices
        wide = wide.T.rename_axis("data set")
        wide.columns.name = None
    return wide


def _metric_name(name: str) -> str:
    """MLflow takes letters, digits, _ - . space (and /, which would read as a path) in a metric name."""
    return re.sub(r"[^A-Za-z0-9_.\- ]", "_", name)


def leaderboard_metrics(table: pd.DataFrame) -> dict[str, float]:
    """`test_auc.<dataset>.<family>` and `test_auprc.<dataset>.<family>`: each row's mean test ROC AUC and
    AUPRC. A family with two rows in a data set (DNABERT pretrained and from scratch) is named by its
    model label there instead."""
    twice = table.duplicated(["dataset", "family"], keep=False)
    keys = [slug(row.model, "_") if repeated else row.family
            for row, repeated in zip(table.itertuples(), twice, strict=True)]
    metrics = {}
    for name, column in (("test_auc", "mean_test_auc"), ("test_auprc", "mean_test_auprc")):
        if column in table:
            metrics.update({_metric_name(f"{name}.{dataset}.{key}"): float(value)
                            for dataset, key, value in zip(table.dataset, keys, table[column], strict=True)
                            if pd.notna(value)})
    return metrics
