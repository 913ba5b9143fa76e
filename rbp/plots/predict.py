"""A transcript's binding profile: window scores along the sequence, called sites, motif positions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def profile_figure(sequence_id: str, length: int, starts, window: int, scores, threshold: float, sites,
                   motif_starts=(), motif: str | None = None, model: str = "model", attribution=None):
    """The per-nucleotide profile (the best window covering each position) as a filled curve, each
    window's score at its centre as dots, the threshold, called sites shaded and motif starts as ticks;
    with `attribution` (per nucleotide, NaN where not explained), its track in a panel below."""
    from rbp.scan import profile

    starts, scores = np.asarray(starts), np.asarray(scores, dtype=float)
    span = min(window, length)
    width = min(16.0, max(8.0, length / 400))
    if attribution is None:
        fig, ax = plt.subplots(figsize=(width, 3.6))
    else:
        fig, (ax, below) = plt.subplots(2, 1, figsize=(width, 5.0), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1.3]})
        _attribution_track(below, np.asarray(attribution, dtype=float), sites)
    colours = sns.color_palette()
    ax.fill_between(np.arange(length), profile(length, starts, window, scores), step="mid", alpha=0.35,
                    color=colours[0], label="profile (best window covering each position)")
    ax.plot(starts + span // 2, scores, ".", ms=2.5, color=colours[0], alpha=0.8,
            label=f"window score (at its centre; {span} nt windows)")
    ax.axhline(threshold, color="0.3", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    for i, site in enumerate(sites):
        ax.axvspan(site.start, site.end, color=colours[1], alpha=0.18, lw=0,
                   label="called site" if i == 0 else None)
    if len(motif_starts):
        ax.plot(motif_starts, np.full(len(motif_starts), -0.06), "|", ms=12, mew=2, color=colours[3],
                label=f"{motif} start", clip_on=False)
    ax.set(xlim=(0, length), ylim=(-0.1, 1.02), xlabel="" if attribution is not None else
           "position in the sequence (nt, 0-based)",
           ylabel="P(binding site)", title=f"{sequence_id}: {model} ({len(sites)} site{'s' * (len(sites) != 1)})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def _attribution_track(ax, track: np.ndarray, sites) -> None:
    """Each explained nucleotide's score as a bar: up where its base raises the binding logit."""
    colours = sns.color_palette()
    positions = np.flatnonzero(~np.isnan(track))
    values = track[positions]
    ax.bar(positions, np.clip(values, 0, None), width=1.0, color=colours[2], lw=0)
    ax.bar(positions, np.clip(values, None, 0), width=1.0, color=colours[3], lw=0)
    for site in sites:
        ax.axvspan(site.start, site.end, color=colours[1], alpha=0.12, lw=0)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set(xlabel="position in the sequence (nt, 0-based)", ylabel="attribution")
    ax.set_title("in-silico mutagenesis around each site's summit (binding logit: base against the mean base)",
                 fontsize="small", loc="left")


def tracks_figure(sequence_id: str, length: int, tracks: dict):
    """Which proteins bind where along one sequence: a track per model (`tracks`: label -> (profile,
    threshold, sites)), its profile filled, its threshold dashed, its called sites shaded, all on one
    position axis."""
    colours = sns.color_palette(n_colors=max(len(tracks), 3))
    width = min(16.0, max(8.0, length / 400))
    fig, axes = plt.subplots(len(tracks), 1, figsize=(width, 0.9 + 1.05 * len(tracks)), sharex=True, squeeze=False)
    for i, (label, (track, threshold, sites)) in enumerate(tracks.items()):
        ax, colour = axes[i, 0], colours[i]
        ax.fill_between(np.arange(length), track, step="mid", alpha=0.45, color=colour, lw=0)
        ax.axhline(threshold, color="0.3", ls="--", lw=0.8)
        for site in sites:
            ax.axvspan(site.start, site.end, color=colour, alpha=0.18, lw=0)
        ax.set_ylim(0, 1.02)
        ax.set_yticks([0, 1])
        ax.set_ylabel(f"{label}\n{len(sites)} site{'s' * (len(sites) != 1)}", rotation=0, ha="right", va="center",
                      fontsize="small")
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set(xlim=(0, length), xlabel="position in the sequence (nt, 0-based)\nfilled: the best window "
                    "covering each position, dashed: the model's threshold, shaded: its called sites")
    axes[0, 0].set_title(f"{sequence_id}: P(binding site) per model", fontsize="medium", loc="left")
    fig.tight_layout(h_pad=0.3)
    return fig
