"""A variant's effect: both alleles' binding profiles around it and what the model reads in each."""

from __future__ import annotations

import logomaker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rbp.attribution import one_hot
from rbp.plots.interpret import RNA


def variant_figure(view: dict, row: dict):
    """Top: the reference and alternative profiles (the best window covering each position) within a
    window's length of the variant, the threshold dashed, the variant marked. Below: each allele's
    attributions (in-silico mutagenesis of its best window covering the variant) as a logo of the
    bases around it, on one scale. `view`: `rbp.variants.view`; `row`: the variant's results row."""
    v = view["variant"]
    colours = sns.color_palette()
    fig, (top, ref_ax, alt_ax) = plt.subplots(3, 1, figsize=(10, 6.2), gridspec_kw={"height_ratios": [2.2, 1, 1]})
    positions = view["positions"]
    for allele, colour, base in (("ref", colours[0], v.ref), ("alt", colours[3], v.alt)):
        top.plot(positions, view[f"{allele}_profile"], drawstyle="steps-mid", color=colour, lw=1.6,
                 label=f"{allele} ({_rna(base)}): best window {row[f'{allele}_probability']:.3f}")
    top.axhline(view["threshold"] if row.get("threshold") is None else row["threshold"], color="0.3", ls="--",
                lw=1, label="threshold")
    top.axvline(v.position, color="0.2", lw=0.8, alpha=0.6)
    top.set(xlim=(positions[0] - 0.5, positions[-1] + 0.5), ylim=(-0.02, 1.02), ylabel="P(binding site)",
            xlabel=f"position in {v.sequence_id} (1-based)")
    top.legend(loc="upper left", bbox_to_anchor=(1.005, 1), frameon=False, fontsize="small")
    top.set_title(f"{v.name}: {_rna(v.ref)}>{_rna(v.alt)} at {v.sequence_id}:{v.position}, {view['label']}: site "
                  f"{row['site']}, log-odds {row['delta_logodds']:+.2f}, percentile {row['percentile']:.0f}",
                  fontsize=10, loc="left")
    logos = [view["ref_logo"], view["alt_logo"]]
    limit = max(float(np.abs(scores).max()) for _, _, scores in logos) * 1.1 or 1.0
    # both alleles on one axis: their best windows may end at different places near the variant
    first = min(int(where[0]) for where, _, _ in logos)
    last = max(int(where[-1]) for where, _, _ in logos)
    step = max(1, (last - first) // 8)
    for ax, allele, (where, bases, scores) in zip((ref_ax, alt_ax), ("ref", "alt"), logos, strict=True):
        matrix = pd.DataFrame(one_hot([bases])[0] * np.asarray(scores)[:, None], columns=RNA, index=where)
        logomaker.Logo(matrix, ax=ax, color_scheme="classic", flip_below=False)
        ax.axvspan(v.position - 0.5, v.position + 0.5, color=colours[1], alpha=0.2, lw=0)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlim(first - 0.5, last + 0.5)
        ax.set_xticks(range(v.position - (v.position - first) // step * step, last + 1, step))
        ax.set_ylim(-limit, limit)
        ax.set_ylabel(f"{allele} ({_rna(getattr(v, allele))})", fontsize=9)
        ax.tick_params(labelsize=7)
    alt_ax.set_xlabel("position (1-based); letter height: the base's effect on the binding log-odds against the "
                      "mean base (in-silico mutagenesis of the allele's best window)", fontsize=8)
    fig.tight_layout()
    return fig


def _rna(base: str) -> str:
    return base.replace("T", "U")
