"""Figures of the model comparison; each function returns a Figure.

Inputs are the DataFrames `rbp.tracking.load_results` loads, keyed by model label; a model keeps its colour in
every figure. Legends sit outside the axes and figures grow with the number of models, so five to
eight models stay readable; layouts are constrained, so a figure saved without `bbox_inches` (as
MLflow's `log_figure` saves it) keeps its legend.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from rbp.metrics import metric as registered
from rbp.reporting import format_p

# Okabe & Ito's colour-blind-safe colours, ordered so that any first five are far apart (blue and sky
# blue, orange and vermillion only meet from six models on); yellow, pale on white, is left out.
MODEL_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#000000", "#56B4E9", "#D55E00", "#8C6D31"]


def model_palette(models) -> dict:
    """A colour per model, in the given order: distinct and colour-blind safe up to eight models."""
    models = list(models)
    colours = MODEL_COLOURS if len(models) <= len(MODEL_COLOURS) else sns.color_palette("husl", len(models))
    return dict(zip(models, colours, strict=False))


def _present(frames: dict) -> dict:
    return {model: frame for model, frame in frames.items() if frame is not None and not frame.empty}


def _wrap(label: str, width: int = 22) -> str:
    return textwrap.fill(label, width)


def _legend_below(ax, handles, labels, title: str) -> None:
    """One entry a line under the axes: long model labels fit, and no curve is hidden."""
    ax.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1,
              fontsize="small", title_fontsize="small", frameon=False, alignment="left")


def _curve_figure(n_models: int):
    """An axes of ROC/PR curves with room below it for a legend line per model."""
    return plt.subplots(figsize=(5.2, 4.6 + 0.24 * max(n_models, 1)), layout="constrained")


def roc_curves(oof_by_model: dict[str, pd.DataFrame], palette: dict | None = None):
    """ROC curve of each model's pooled out-of-fold predictions; the legend lists them by AUC."""
    palette = palette or model_palette(oof_by_model)
    present = _present(oof_by_model)
    fig, ax = _curve_figure(len(present))
    curves = []
    for model, oof in present.items():
        fpr, tpr, _ = roc_curve(oof["label"], oof["probability"])
        auc = roc_auc_score(oof["label"], oof["probability"])
        (line,) = ax.plot(fpr, tpr, color=palette[model], linewidth=1.6)
        curves.append((auc, line, f"{model}: {auc:.3f}"))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(title="ROC, pooled out-of-fold", xlabel="false positive rate", ylabel="true positive rate",
           xlim=(0, 1), ylim=(0, 1.01))
    curves.sort(key=lambda c: -c[0])
    if curves:
        _legend_below(ax, [c[1] for c in curves], [c[2] for c in curves], "ROC AUC")
    return fig


def pr_curves(oof_by_model: dict[str, pd.DataFrame], palette: dict | None = None):
    """Precision-recall curve of each model's pooled out-of-fold predictions; the legend lists them by
    average precision."""
    palette = palette or model_palette(oof_by_model)
    present = _present(oof_by_model)
    fig, ax = _curve_figure(len(present))
    curves = []
    prevalence = None
    for model, oof in present.items():
        precision, recall, _ = precision_recall_curve(oof["label"], oof["probability"])
        ap = average_precision_score(oof["label"], oof["probability"])
        (line,) = ax.plot(recall, precision, color=palette[model], linewidth=1.6)
        curves.append((ap, line, f"{model}: {ap:.3f}"))
        prevalence = oof["label"].mean()
    ax.set(title="Precision-recall, pooled out-of-fold", xlabel="recall", ylabel="precision",
           xlim=(0, 1), ylim=(0, 1.01))
    curves.sort(key=lambda c: -c[0])
    if prevalence is not None:
        chance = ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1)
        curves.append((None, chance, f"chance: {prevalence:.3f}"))
    if curves:
        _legend_below(ax, [c[1] for c in curves], [c[2] for c in curves], "average precision")
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
    fig, ax = plt.subplots(figsize=(max(6.5, 2.2 + 1.6 * len(order)), 4.4), layout="constrained")
    colours = sns.color_palette("colorblind", n_colors=len(folds))
    markers = "osD^vP*Xh<>p"
    for i, (fold, colour) in enumerate(zip(folds, colours, strict=True)):
        part = data[data.fold == fold].assign(x=lambda d: d.model.map(position)).sort_values("x")
        ax.plot(part.x, part[metric], color=colour, marker=markers[i % len(markers)], markersize=7,
                linewidth=1.2, alpha=0.85, label=f"fold {int(fold)}")
    means = data.groupby("model")[metric].mean()
    ax.scatter([position[m] for m in means.index], means.values, marker="_", s=1400, color="black",
               linewidths=2.5, zorder=5)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", linewidth=2.5))  # the bar itself would overrun its label
    labels.append("mean over folds")
    ax.set_xticks(range(len(order)), [textwrap.fill(model, 16) for model in order])  # long labels wrap
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set(title=title[0].upper() + title[1:], xlabel="", ylabel=registered(metric).title)
    ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    return fig


def epoch_history(history_by_model: dict[str, pd.DataFrame], metric: str = "val_auc",
                  palette: dict | None = None):
    """Validation AUC per epoch, a panel per model (one shared scale): one thin line per fold, the mean
    over folds bold. Models with one epoch or none (a k-mer logistic regression is fitted once, an
    ensemble trains nothing itself) have no curve: they are named under the panels, not drawn."""
    palette = palette or model_palette(history_by_model)
    curves, left_out = {}, []
    for model, frame in history_by_model.items():
        frame = None if frame is None else frame.dropna(subset=[metric])
        if frame is None or frame.empty:
            left_out.append(f"{model} (no per-epoch history)")
        elif frame.groupby("fold").epoch.nunique().max() < 2:
            left_out.append(f"{model} (one epoch)")
        else:
            curves[model] = frame
    ylabel = "validation ROC AUC" if metric == "val_auc" else metric.replace("_", " ")
    columns = min(max(len(curves), 1), 3)
    rows = math.ceil(max(len(curves), 1) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 + 3.3 * columns, 0.9 + 2.8 * rows), sharey=True,
                             squeeze=False, layout="constrained")
    for ax, (model, frame) in zip(axes.flat, curves.items(), strict=False):
        colour = palette[model]
        for _, fold in frame.sort_values("epoch").groupby("fold"):
            ax.plot(fold.epoch, fold[metric], color=colour, alpha=0.35, linewidth=1)
        mean = frame.groupby("epoch")[metric].mean()
        ax.plot(mean.index, mean.values, color=colour, linewidth=2.5, marker="o", markersize=4)
        ax.set_title(_wrap(model, 32), fontsize="medium")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes.flat[len(curves):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    if not curves:
        axes[0, 0].set_axis_on()
        axes[0, 0].text(0.5, 0.5, "no per-epoch history logged", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    fig.suptitle("Validation ROC AUC per epoch, what each fold's epoch was chosen on (thin: each fold; "
                 "bold: the mean)" if curves else "Validation ROC AUC per epoch", fontsize="medium")
    if left_out and curves:
        fig.supxlabel(textwrap.fill("Not drawn: " + "; ".join(left_out) + ".", 110), fontsize="small",
                      color="dimgrey")
    return fig


def difference_to_best(auc_differences: pd.DataFrame, best: str, palette: dict | None = None):
    """Each model's pooled out-of-fold ROC AUC minus the best's (the best chosen on validation), with its
    unadjusted interval, and the raw and Holm-adjusted p-values written beside it. Rows: model_a the
    model, model_b the best, as `rbp.compare.compare_models` gives them."""
    rows = auc_differences[auc_differences.model_b == best].reset_index(drop=True)
    palette = palette or model_palette([best, *rows.model_a])
    fig, ax = plt.subplots(figsize=(8.5, 1.5 + 0.55 * max(len(rows), 1)), layout="constrained")
    y = np.arange(len(rows))[::-1]
    for position, row in zip(y, rows.itertuples(), strict=True):
        ax.errorbar(row.difference, position, xerr=[[row.difference - row.ci_low], [row.ci_high - row.difference]],
                    fmt="o", color=palette.get(row.model_a, "black"), markersize=7, capsize=4, linewidth=2)
        ax.annotate(f"p {format_p(row.p_value)}, Holm {format_p(row.p_value_holm)}", (1.02, position),
                    xycoords=("axes fraction", "data"), va="center", fontsize="small")
    ax.axvline(0, color="grey", linewidth=1, linestyle="--")
    ax.set_yticks(y, [_wrap(model, 24) for model in rows.model_a])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    confidence = f"{rows.confidence.iloc[0]:.0%}" if len(rows) else "95%"
    ax.set(xlabel=f"ROC AUC difference to {best} ({confidence} interval, unadjusted)",
           title=_wrap(f"Pooled out-of-fold ROC AUC, each model minus the best on validation ({best})", 80))
    ax.margins(x=0.15)
    return fig


def comparison_figures(results: dict, comparison=None) -> dict:
    """The figures of the compare notebook, from `rbp.tracking.load_results`' output; with a comparison
    whose best was chosen on validation, the per-fold figure lists the models best first and
    `auc_vs_best` shows each model's difference to the best."""
    palette = model_palette(results)
    ranked = list(comparison.validation.model) if comparison is not None else []
    order = [m for m in ranked if m in results] + [m for m in results if m not in ranked]
    figures = {
        "roc_curves": roc_curves({m: r.oof for m, r in results.items()}, palette),
        "pr_curves": pr_curves({m: r.oof for m, r in results.items()}, palette),
        "fold_auc": fold_metric({m: results[m].fold_metrics for m in order}, palette=palette),
        "val_auc_per_epoch": epoch_history({m: r.history for m, r in results.items()}, palette=palette),
    }
    if comparison is not None and comparison.best and not comparison.auc_differences.empty:
        figures["auc_vs_best"] = difference_to_best(comparison.auc_differences, comparison.best, palette)
    return figures
