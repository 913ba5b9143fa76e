"""Figures of the model comparison; each function returns a Figure.

Inputs are the DataFrames rbp.runs loads, keyed by model label; a model keeps its colour in
every figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from rbp.metrics import metric as registered


def model_palette(models) -> dict:
    models = list(models)
    return dict(zip(models, sns.color_palette(n_colors=max(len(models), 1)), strict=False))


def _present(frames: dict) -> dict:
    return {model: frame for model, frame in frames.items() if frame is not None and not frame.empty}


def roc_curves(oof_by_model: dict[str, pd.DataFrame], palette: dict | None = None):
    """ROC curve of each model's pooled out-of-fold predictions."""
    palette = palette or model_palette(oof_by_model)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for model, oof in _present(oof_by_model).items():
        fpr, tpr, _ = roc_curve(oof["label"], oof["probability"])
        auc = roc_auc_score(oof["label"], oof["probability"])
        ax.plot(fpr, tpr, color=palette[model], label=f"{model} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(title="ROC, pooled out-of-fold", xlabel="false positive rate", ylabel="true positive rate",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def pr_curves(oof_by_model: dict[str, pd.DataFrame], palette: dict | None = None):
    """Precision-recall curve of each model's pooled out-of-fold predictions."""
    palette = palette or model_palette(oof_by_model)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    prevalence = None
    for model, oof in _present(oof_by_model).items():
        precision, recall, _ = precision_recall_curve(oof["label"], oof["probability"])
        ap = average_precision_score(oof["label"], oof["probability"])
        ax.plot(recall, precision, color=palette[model], label=f"{model} (AP {ap:.3f})")
        prevalence = oof["label"].mean()
    if prevalence is not None:
        ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set(title="Precision-recall, pooled out-of-fold", xlabel="recall", ylabel="precision",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    return fig


def fold_metric(fold_metrics_by_model: dict[str, pd.DataFrame], metric: str = "test_auc",
                palette: dict | None = None):
    """Each fold's score per model; grey lines join a fold across models (the comparison is paired)."""
    title = f"{registered(metric).title} per fold"
    palette = palette or model_palette(fold_metrics_by_model)
    data = pd.concat([frame[["fold", metric]].assign(model=model)
                      for model, frame in _present(fold_metrics_by_model).items()], ignore_index=True)
    order = list(_present(fold_metrics_by_model))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(order), 4))
    position = {model: i for i, model in enumerate(order)}
    for _, fold in data.groupby("fold"):
        ax.plot(fold.model.map(position), fold[metric], color="grey", alpha=0.5, linewidth=1, zorder=1)
    sns.stripplot(data=data, x="model", y=metric, hue="model", order=order, hue_order=order,
                  palette=palette, size=8, jitter=False, legend=False, ax=ax, zorder=2)
    sns.pointplot(data=data, x="model", y=metric, order=order, color="black", markers="_",
                  linestyles="none", errorbar=None, ax=ax, zorder=3)
    for _, row in data.iterrows():
        ax.annotate(str(int(row.fold)), (position[row.model], row[metric]), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize="x-small", color="grey")
    ax.set(title=title[0].upper() + title[1:], xlabel="", ylabel=registered(metric).title)
    fig.tight_layout()
    return fig


def epoch_history(history_by_model: dict[str, pd.DataFrame], metric: str = "val_auc",
                  palette: dict | None = None):
    """Validation AUC per epoch: one thin line per fold, the mean over folds bold."""
    palette = palette or model_palette(history_by_model)
    present = _present(history_by_model)
    fig, ax = plt.subplots(figsize=(6, 4))
    if present:
        data = pd.concat([frame.assign(model=model) for model, frame in present.items()], ignore_index=True)
        order = list(present)
        sns.lineplot(data=data, x="epoch", y=metric, hue="model", hue_order=order, palette=palette,
                     units="fold", estimator=None, alpha=0.35, linewidth=1, legend=False, ax=ax)
        sns.lineplot(data=data, x="epoch", y=metric, hue="model", hue_order=order, palette=palette,
                     errorbar=None, linewidth=2.5, marker="o", ax=ax)
        ax.legend(title="", fontsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no per-epoch history logged", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="Validation AUC per epoch (thin: folds, bold: mean)", xlabel="epoch",
           ylabel=metric.replace("_", " "))
    fig.tight_layout()
    return fig


def comparison_figures(results: dict) -> dict:
    """The four figures of the compare notebook, from rbp.runs.load_results' output."""
    palette = model_palette(results)
    return {
        "roc_curves": roc_curves({m: r.oof for m, r in results.items()}, palette),
        "pr_curves": pr_curves({m: r.oof for m, r in results.items()}, palette),
        "fold_auc": fold_metric({m: r.fold_metrics for m, r in results.items()}, palette=palette),
        "val_auc_per_epoch": epoch_history({m: r.history for m, r in results.items()}, palette=palette),
    }
