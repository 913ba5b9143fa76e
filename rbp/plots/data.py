"""What the sequences of a data set look like: classes, lengths, a motif's occurrence."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rbp.motifs import PUMILIO, motif_share

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
    """Lengths per class; one length is said as a number, and the bins stay few whatever the lengths."""
    data = _classes(table).assign(length=table.sequence.str.len())
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    if data.length.nunique() == 1:
        ax.text(0.5, 0.5, f"every sequence is {int(data.length.iloc[0])} nt long", ha="center", va="center",
                fontsize="large", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        span = int(data.length.max() - data.length.min())
        discrete = span < 40  # a bar per length only where there are few; else at most 50 bins
        sns.histplot(data=data, x="length", hue="class", hue_order=["positive", "negative"],
                     multiple="dodge", discrete=discrete, bins="auto" if discrete else min(50, span + 1),
                     shrink=0.8, ax=ax)
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
