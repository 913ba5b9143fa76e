"""What a model learned, drawn as sequence logos (logomaker, RNA letters): attribution tracks of
single sequences (letter height = the nucleotide's score) and discovered motifs (letter height =
information content), each motif with where its seqlets sit along the sequences."""

from __future__ import annotations

import logomaker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rbp.attribution import one_hot

RNA = ["A", "C", "G", "U"]


def _frame(matrix: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(matrix, dtype=float), columns=RNA)


def _information(ppm) -> pd.DataFrame:
    """A probability matrix as information content (bits), a small pseudocount keeping log(0) away and
    each row summing to 1 (else logomaker prints a warning into the report)."""
    probabilities = np.asarray(ppm, dtype=float) + 1e-6
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return logomaker.transform_matrix(_frame(probabilities), from_type="probability", to_type="information")


def attribution_logos(interpretation, n: int = 5):
    """The attribution tracks of the `n` most confident sequences, one logo each: the letter of each
    position drawn as high as its score (below the line where it lowers the binding score)."""
    table = interpretation.table.head(n)
    fig, axes = plt.subplots(len(table), 1, figsize=(12, 1.5 * len(table) + 0.6), squeeze=False)
    for ax, (i, row) in zip(axes[:, 0], table.iterrows(), strict=True):
        matrix = one_hot([row.sequence])[0] * interpretation.scores[i][:, None]
        logomaker.Logo(_frame(matrix), ax=ax, color_scheme="classic", flip_below=False)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(f"{row.id}  (P = {row.probability:.3f}, fold {row.fold})", fontsize=9, loc="left")
        ax.set_ylabel("score", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{interpretation.label}: attributions ({interpretation.method}) of the most confident "
                 "binding sites, each by the fold model that held it out", fontsize=10)
    fig.tight_layout()
    return fig


def motif_logos(interpretation, length: int | None = None):
    """Each discovered motif: its information-content logo, its support, and a histogram of where
    its seqlets start along the sequences."""
    motifs = interpretation.motifs
    if not motifs:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, f"{interpretation.label}: no motif found", ha="center", va="center")
        ax.axis("off")
        return fig
    length = length or interpretation.scores.shape[1]
    fig, axes = plt.subplots(len(motifs), 2, figsize=(11, 1.9 * len(motifs) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1.3, 1]})
    for (logo_ax, where_ax), motif in zip(axes, motifs, strict=True):
        information = _information(motif.ppm)
        logomaker.Logo(information, ax=logo_ax, color_scheme="classic")
        logo_ax.set_ylim(0, 2)
        logo_ax.set_xticks(range(len(motif.ppm)))
        logo_ax.set_ylabel("bits", fontsize=8)
        logo_ax.set_title(f"{motif.name}: {motif.consensus}, {motif.seqlets} seqlets in {motif.sequences} "
                          f"sequences ({motif.share:.0%})", fontsize=9, loc="left")
        where_ax.hist(motif.starts, bins=np.arange(0, length + 1, max(1, length // 27)), color="#4c72b0")
        where_ax.set_xlim(0, length)
        where_ax.set_title("where its seqlets start", fontsize=9, loc="left")
        where_ax.set_xlabel("position (nt)", fontsize=8)
        where_ax.tick_params(labelsize=7)
    fig.suptitle(f"{interpretation.label}: motifs discovered by TF-MoDISco ({interpretation.method})", fontsize=10)
    fig.tight_layout()
    return fig


def top_motifs(entries: list[dict]):
    """One information-content logo per data set: the top motif its chosen model learned (`entries`:
    dicts of dataset, model, consensus, share, ppm (ACGU rows) and match, a known motif it matches or
    ""), titled with the data set, the model, its support and its match; a data set without a motif
    says so."""
    n = max(len(entries), 1)
    columns = 3 if n > 4 else n
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.3 * columns, 1.9 * rows + 0.5), squeeze=False)
    for ax in axes.flat[len(entries):]:
        ax.axis("off")
    for ax, entry in zip(axes.flat, entries, strict=False):
        title = f"{entry['dataset']}\n{entry['model']}"
        if entry.get("ppm") is None:
            ax.text(0.5, 0.5, "no motif found", ha="center", va="center", fontsize=9, color="grey")
            ax.axis("off")
            ax.set_title(title, fontsize=8, loc="left")
            continue
        information = _information(entry["ppm"])
        logomaker.Logo(information, ax=ax, color_scheme="classic")
        ax.set_ylim(0, 2)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
        match = f"matches {entry['match']}" if entry.get("match") else "no known match"
        ax.set_title(f"{title}: {entry['consensus']} ({entry['share']:.0%} of sites; {match})", fontsize=8,
                     loc="left")
    fig.suptitle("The top motif each data set's chosen model learned (TF-MoDISco)", fontsize=10)
    fig.tight_layout()
    return fig
