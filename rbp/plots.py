"""Figures (seaborn on matplotlib); each function returns a Figure to show or log."""

from __future__ import annotations

import matplotlib

if matplotlib.get_backend().lower() not in {"module://matplotlib_inline.backend_inline"}:
    matplotlib.use("Agg")  # headless by default; notebooks keep their inline backend
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rbp.motifs import PUMILIO, motif_share

sns.set_theme(style="whitegrid", context="notebook")
CLASS_NAMES = {1: "positive", 0: "negative"}


def _classes(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(**{"class": table.label.map(CLASS_NAMES)})


def class_balance(table: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(4, 3.2))
    sns.countplot(data=_classes(table), x="class", order=["positive", "negative"], ax=ax)
    ax.set(title="Sequences per class", xlabel="", ylabel="sequences")
    fig.tight_layout()
    return fig


def length_distribution(table: pd.DataFrame):
    data = _classes(table).assign(length=table.sequence.str.len())
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    discrete = data.length.nunique() < 40
    sns.histplot(data=data, x="length", hue="class", hue_order=["positive", "negative"],
                 multiple="dodge", discrete=discrete, shrink=0.8, ax=ax)
    ax.set(title="Sequence length", xlabel="length (nt)")
    fig.tight_layout()
    return fig


def motif_occurrence(table: pd.DataFrame, motif: str = PUMILIO):
    share = motif_share(table, motif)
    fig, ax = plt.subplots(figsize=(4, 3.2))
    sns.barplot(data=share, x="class", y="share", order=["positive", "negative"], ax=ax)
    ax.set(title=f"Sequences with {motif}", xlabel="", ylabel="share of sequences", ylim=(0, 1))
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f")
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame, title: str = ""):
    """Training and validation loss and validation AUC per epoch, one line per fold; the best
    (selected) epoch of each fold is marked on the AUC panel."""
    data = history.assign(fold=history.fold.astype(str))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, metric, label in zip(axes, ("train_loss", "val_loss", "val_auc"),
                                 ("training loss", "validation loss", "validation ROC AUC"), strict=True):
        sns.lineplot(data=data, x="epoch", y=metric, hue="fold", marker="o", markersize=3, ax=ax,
                     legend=metric == "val_auc")
        ax.set(title=label, ylabel="", xlabel="epoch")
    best = data.loc[data.groupby("fold").val_auc.idxmax()]
    axes[2].scatter(best.epoch, best.val_auc, s=80, facecolors="none", edgecolors="black",
                    label="selected epoch", zorder=5)
    axes[2].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
