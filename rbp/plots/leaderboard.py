"""The leaderboard across data sets: each model's test ROC AUC (and AUPRC), per data set."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from rbp.plots.compare import _wrap, model_palette


def says_synthetic(dataset: str, synthetic: bool) -> bool:
    """Whether a synthetic data set's name needs "(synthetic)" added (not when it says so itself)."""
    return bool(synthetic) and "synthetic" not in dataset.lower()


MANY = 6  # more data sets than this are drawn one per row (`leaderboard_rows`)


def leaderboard(table: pd.DataFrame):
    """The leaderboard's figure: `leaderboard_columns` for a few data sets, `leaderboard_rows` for many."""
    if table.dataset.nunique() > MANY:
        return leaderboard_rows(table)
    return leaderboard_columns(table)


def leaderboard_rows(table: pd.DataFrame):
    """Many data sets at a glance: a row per data set (the hardest at the bottom, by the mean test ROC
    AUC of its models), two panels, test ROC AUC and test AUPRC, a dot per model in its colour, a ring
    on the model chosen on validation, and on AUPRC a grey bar at the data set's chance level (the share
    of binding sites among its test sequences). The title says where the test figures come from."""
    import numpy as np

    order = table.groupby("dataset", sort=False).mean_test_auc.mean().sort_values().index.tolist()
    synthetic = table.groupby("dataset").synthetic.any()
    models = table.groupby("model")["rank"].mean().astype(float).sort_values(kind="stable").index.tolist()
    palette = model_palette(models)
    y = table.dataset.map({d: i for i, d in enumerate(order)})
    panels = [("mean_test_auc", "test ROC AUC")]
    if "mean_test_auprc" in table and table.mean_test_auprc.notna().any():
        panels.append(("mean_test_auprc", "test AUPRC"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 3.4, 1.2 + 0.36 * len(order)),
                             sharey=True, layout="constrained", squeeze=False)
    for ax, (column, label) in zip(axes[0], panels, strict=True):
        if column == "mean_test_auprc" and "test_chance_auprc" in table:
            chance = table.groupby("dataset").test_chance_auprc.first()
            ax.scatter([chance.get(d, np.nan) for d in order], range(len(order)), marker="|", s=220, color="grey",
                       linewidths=2, label="chance (a guess)", zorder=1)
        for model in models:
            part = table.model == model
            ax.scatter(table[column][part], y[part], s=36, color=palette[model], label=model, zorder=3)
        if table.chosen.any():
            ax.scatter(table[column][table.chosen], y[table.chosen], s=150, facecolors="none", edgecolors="black",
                       linewidths=1.1, zorder=4, label="chosen on validation")
        ax.set(xlabel=label)
        ax.grid(axis="y", color="#eeeeee")
    axes[0][0].set_yticks(range(len(order)), [d + (" (synthetic)" if says_synthetic(d, synthetic[d]) else "")
                                              for d in order])
    axes[0][0].set_ylim(-0.6, len(order) - 0.4)
    fig.suptitle(f"{len(order)} data sets: test ROC AUC and AUPRC per model ({_how(table)})")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    axes[0][-1].legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small",
                       frameon=False)
    return fig


def _how(table: pd.DataFrame) -> str:
    """Where the test figures come from, for a title."""
    protocols = set(table.protocol) if "protocol" in table else {"cv"}
    return ("one fixed test set each" if protocols == {"fixed_test"} else
            "mean ± std over folds" if protocols == {"cv"} else "mixed protocols: read with care")


def leaderboard_columns(table: pd.DataFrame):
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
    ax.set(title=f"Test ROC AUC, {_how(table)}", xlabel="", ylabel="test ROC AUC")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "chosen on validation")  # the ring last
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="center left", bbox_to_anchor=(1.01, 0.5),
              fontsize="small", frameon=False)
    return fig
