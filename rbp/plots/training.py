"""How a cross-validation trained: losses and validation AUC per epoch."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def learning_curves(history: pd.DataFrame, title: str = ""):
    """Training and validation loss and validation AUC per epoch, one line per fold; the best
    (selected) epoch of each fold is marked on the AUC panel."""
    data = history.assign(fold=history.fold.astype(str))
    if data.val_auc.isna().all():  # selection: final, no validation split: the training loss alone
        fig, ax = plt.subplots(figsize=(6, 3.6))
        sns.lineplot(data=data, x="epoch", y="train_loss", hue="fold", marker="o", markersize=3, ax=ax)
        ax.set(title="training loss (no validation split: the final epoch is kept)", ylabel="", xlabel="epoch")
        ax.legend(fontsize=8, title="fold", title_fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5),
                  frameon=False)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, metric, label in zip(axes, ("train_loss", "val_loss", "val_auc"),
                                 ("training loss", "validation loss", "validation ROC AUC"), strict=True):
        sns.lineplot(data=data, x="epoch", y=metric, hue="fold", marker="o", markersize=3, ax=ax,
                     legend=metric == "val_auc")
        ax.set(title=label, ylabel="", xlabel="epoch")
    best = data.loc[data.groupby("fold").val_auc.idxmax()]
    axes[2].scatter(best.epoch, best.val_auc, s=80, facecolors="none", edgecolors="black",
                    label="selected epoch", zorder=5)
    axes[2].legend(fontsize=8, title="fold", title_fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5),
                   frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
