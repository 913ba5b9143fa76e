"""The sequence-length sweep read back from MLflow: test metrics against the window length."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from mlflow.tracking import MlflowClient

import rbp.plots  # noqa: F401  (the backend choice and the seaborn theme)
from rbp.compare import find_cv_runs, model_label
from rbp.errors import RbpError
from rbp.metrics import METRICS, format_mean_std


def sweep_table(pipeline_run_id: str) -> pd.DataFrame:
    """One row per CV run under the pipeline run: model, length (nt), and mean/std of each test metric."""
    client = MlflowClient()
    rows = []
    for cv in find_cv_runs(pipeline_run_id=pipeline_run_id):
        length = cv.tags.get("length", "full")
        if length == "full":
            continue
        metrics = client.get_run(cv.run_id).data.metrics
        row = {"model": model_label({**cv.tags, "length": "full"}), "length": int(length),
               "n_folds": int(metrics.get("n_folds", 0)), "run_id": cv.run_id}
        for m in METRICS:
            row[f"mean_test_{m}"] = metrics.get(f"mean_test_{m}")
            row[f"std_test_{m}"] = metrics.get(f"std_test_{m}")
        rows.append(row)
    if not rows:
        raise RbpError(f"pipeline run {pipeline_run_id} has no CV runs with a length window: run a params "
                       "file with a `sweep: lengths:` list (e.g. params/length_sweep.yaml)")
    return pd.DataFrame(rows).sort_values(["model", "length"]).reset_index(drop=True)


def auc_by_length(table: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """Models as columns, lengths as rows, cells 'mean ± std' of the test metric."""
    cells = table.assign(cell=[format_mean_std(m, s) for m, s in
                               zip(table[f"mean_test_{metric}"], table[f"std_test_{metric}"], strict=True)])
    return cells.pivot(index="length", columns="model", values="cell")


def plot_sweep(table: pd.DataFrame, metric: str = "auc"):
    """Mean test metric against window length, one line per model, error bars one std over folds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    palette = sns.color_palette(n_colors=table.model.nunique())
    for colour, (model, part) in zip(palette, table.groupby("model"), strict=True):
        ax.errorbar(part.length, part[f"mean_test_{metric}"], yerr=part[f"std_test_{metric}"], marker="o",
                    capsize=3, label=model, color=colour)
    ax.set(xlabel="window length (nt, centred)", ylabel=f"test ROC {metric.upper()} (mean ± std over folds)",
           title="How much context each model needs", xticks=sorted(table.length.unique()))
    ax.legend()
    fig.tight_layout()
    return fig
