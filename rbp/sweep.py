"""The length sweep: test metrics against the window length, from the CV runs of a sweep's pipeline
run and their figures (`rbp.tracking.cv_run_figures` reads them)."""

from __future__ import annotations

import pandas as pd

from rbp.errors import RbpError
from rbp.metrics import TEST_METRICS, format_mean_std
from rbp.metrics import metric as registered
from rbp.records import CVRun, model_label


def sweep_table(figures: dict[CVRun, dict[str, float]], pipeline_run_id: str) -> pd.DataFrame:
    """One row per CV run of a window length (`figures`: CV run -> the metrics it logged, of pipeline
    run `pipeline_run_id`): model, length (nt), and mean/std of each test metric."""
    rows = []
    for cv, metrics in figures.items():
        length = cv.tags.get("length", "full")
        if length == "full":
            continue
        row = {"model": model_label({**cv.tags, "length": "full"}), "length": int(length),
               "n_folds": int(metrics.get("n_folds", 0)), "run_id": cv.run_id}
        for key in TEST_METRICS:
            row[f"mean_{key}"] = metrics.get(f"mean_{key}")
            row[f"std_{key}"] = metrics.get(f"std_{key}")
        rows.append(row)
    if not rows:
        raise RbpError(f"pipeline run {pipeline_run_id} has no CV runs with a length window: run a params "
                       "file with a `sweep: lengths:` list (e.g. params/length_sweep.yaml)")
    return pd.DataFrame(rows).sort_values(["model", "length"]).reset_index(drop=True)


def metric_by_length(table: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """Models as columns, lengths as rows, cells 'mean ± std' of the test metric."""
    key = registered(metric).test_key
    cells = table.assign(cell=[format_mean_std(m, s) for m, s in
                               zip(table[f"mean_{key}"], table[f"std_{key}"], strict=True)])
    return cells.pivot(index="length", columns="model", values="cell")
