"""Figures of the model comparison; each function returns a Figure.

Inputs are the DataFrames rbp.runs loads, keyed by model label; a model keeps its colour in
every figure.
"""

from __future__ import annotations

import textwrap

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
    """Each fold's score per model, a line per fold across the models (the comparison is paired: the
    same test fold for every model), and the mean over folds as a black bar."""
    title = f"{registered(metric).title} per fold"
    present = _present(fold_metrics_by_model)
    data = pd.concat([frame[["fold", metric]].assign(model=model) for model, frame in present.items()],
                     ignore_index=True)
    order = list(present)
    position = {model: i for i, model in enumerate(order)}
    folds = sorted(data.fold.unique())
    fig, ax = plt.subplots(figsize=(max(6.5, 2.2 + 1.8 * len(order)), 4.2))
    colours = sns.color_palette("colorblind", n_colors=len(folds))
    markers = "osD^vP*Xh<>p"
    for i, (fold, colour) in enumerate(zip(folds, colours, strict=True)):
        part = data[data.fold == fold].assign(x=lambda d: d.model.map(position)).sort_values("x")
        ax.plot(part.x, part[metric], color=colour, marker=markers[i % len(markers)], markersize=7,
                linewidth=1.2, alpha=0.85, label=f"fold {int(fold)}")
    means = data.groupby("model")[metric].mean()
    ax.scatter([position[m] for m in means.index], means.values, marker="_", s=1400, color="black",
               linewidths=2.5, zorder=5, label="mean over folds")
    ax.set_xticks(range(len(order)), [textwrap.fill(model, 18) for model in order])  # long labels wrap
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set(title=title[0].upper() + title[1:], xlabel="", ylabel=registered(metric).title)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def epoch_history(history_by_model: dict[str, pd.DataFrame], metric: str = "val_auc",
                  palette: dict | None = None):
    """Validation AUC per epoch: one thin line per fold, the mean over folds bold."""
    palette = palette or model_palette(history_by_model)
    present = _present(history_by_model)
    fig, ax = plt.subplots(figsize=(8, 4))
    if present:
        data = pd.concat([frame.assign(model=model) for model, frame in present.items()], ignore_index=True)
        order = list(present)
        sns.lineplot(data=data, x="epoch", y=metric, hue="model", hue_order=order, palette=palette,
                     units="fold", estimator=None, alpha=0.35, linewidth=1, legend=False, ax=ax)
        sns.lineplot(data=data, x="epoch", y=metric, hue="model", hue_order=order, palette=palette,
                     errorbar=None, linewidth=2.5, marker="o", ax=ax)
        ax.legend(title="mean over folds (thin lines: each fold)", fontsize="small", title_fontsize="small",
                  loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no per-epoch history logged", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="Validation ROC AUC per epoch (what each fold's epoch was chosen on)", xlabel="epoch",
           ylabel="validation ROC AUC" if metric == "val_auc" else metric.replace("_", " "))
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
