"""The length sweep: a test metric against the length of the centred window."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rbp.metrics import metric as registered


def plot_sweep(table: pd.DataFrame, metric: str = "auc"):
    """Mean test metric against window length, one line per model, error bars one std over folds."""
    m = registered(metric)
    fig, ax = plt.subplots(figsize=(6, 4))
    palette = sns.color_palette(n_colors=table.model.nunique())
    for colour, (model, part) in zip(palette, table.groupby("model"), strict=True):
        ax.errorbar(part.length, part[f"mean_{m.test_key}"], yerr=part[f"std_{m.test_key}"], marker="o",
                    capsize=3, label=model, color=colour)
    ax.set(xlabel="window length (nt, centred)", ylabel=f"{m.title} (mean ± std over folds)",
           title="How much context each model needs", xticks=sorted(table.length.unique()))
    ax.legend()
    fig.tight_layout()
    return fig
