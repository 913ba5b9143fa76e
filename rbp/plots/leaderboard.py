"""The leaderboard across data sets: each model's test ROC AUC, mean ± std over folds, per data set."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from rbp.plots.compare import _wrap, model_palette


def says_synthetic(dataset: str, synthetic: bool) -> bool:
    """Whether a synthetic data set's name needs "(synthetic)" added (not when it says so itself)."""
    return bool(synthetic) and "synthetic" not in dataset.lower()


def leaderboard(table: pd.DataFrame):
    """A dot per data set and model at the mean test ROC AUC over folds, its bar one std either way:
    data sets along the x axis ("(synthetic)" under a synthetic one), the models side by side within
    each, one colour per model (best mean rank first), the legend outside; a ring marks the model
    chosen on validation in each data set. `table` is `rbp.leaderboard.leaderboard_table`'s."""
    datasets = list(dict.fromkeys(table.dataset))
    synthetic = table.groupby("dataset").synthetic.any()
    models = table.groupby("model")["rank"].mean().astype(float).sort_values(kind="stable").index.tolist()
    palette = model_palette(models)
    step = 0.7 / len(models)  # the models of a data set share 0.7 of its slot
    x = table.dataset.map({d: i for i, d in enumerate(datasets)}) + \
        table.model.map({m: (i - (len(models) - 1) / 2) * step for i, m in enumerate(models)})
    fig, ax = plt.subplots(figsize=(3.6 + 1.4 * max(len(datasets), 2), 4.4), layout="constrained")
    for model in models:
        part = table.model == model
        ax.errorbar(x[part], table.mean_test_auc[part], yerr=table.std_test_auc[part].fillna(0), fmt="o",
                    color=palette[model], markersize=6, capsize=3, linewidth=1.5, label=model)
    if table.chosen.any():
        ax.scatter(x[table.chosen], table.mean_test_auc[table.chosen], s=190, facecolors="none",
                   edgecolors="black", linewidths=1.2, zorder=5, label="chosen on validation")
    for boundary in range(1, len(datasets)):
        ax.axvline(boundary - 0.5, color="lightgrey", linewidth=0.8)
    ax.grid(axis="x", visible=False)  # a grid line through each slot's centre would cross its middle model
    ax.set_xticks(range(len(datasets)),
                  [_wrap(d, 18) + ("\n(synthetic)" if says_synthetic(d, synthetic[d]) else "") for d in datasets])
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set(title="Test ROC AUC, mean ± std over folds", xlabel="", ylabel="test ROC AUC")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "chosen on validation")  # the ring last
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="center left", bbox_to_anchor=(1.01, 0.5),
              fontsize="small", frameon=False)
    return fig
