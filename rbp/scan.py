"""Scanning a long sequence with windows of a model's training length: window coordinates, the
per-nucleotide profile, called sites and their BED lines. Pure numpy: no model, no MLflow.

Coordinates are 0-based and half-open, as in BED: a window starting at 10 of 81 nt covers
positions 10 to 90 (`end` = 91 is the first position after it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rbp.errors import RbpError
from rbp.motifs import motif_regex


def check_stride(window: int, stride: int) -> None:
    if window < 1 or stride < 1:
        raise RbpError(f"window ({window}) and stride ({stride}) must be at least 1")
    if stride > window:
        raise RbpError(f"stride {stride} is longer than the window ({window} nt): positions between "
                       "windows would go unscored; use a stride of at most the window length")


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Starts of the windows that scan a sequence of `length` nt: every `stride` nt from 0, plus one
    window flush with the end when the stride does not land there. A sequence no longer than the
    window is one window, the sequence itself (starting at 0)."""
    check_stride(window, stride)
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - window + 1, stride, dtype=np.int64)
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


def profile(length: int, starts: np.ndarray, window: int, scores: np.ndarray) -> np.ndarray:
    """Per nucleotide, the highest score of the windows covering it (windows from `window_starts`,
    so every position is covered)."""
    by_start = np.full(length + window - 1, -np.inf)
    np.maximum.at(by_start, np.asarray(starts) + window - 1, np.asarray(scores, dtype=float))
    # position i is covered by the windows starting in [i - window + 1, i]: a running max over them
    covering = np.lib.stride_tricks.sliding_window_view(by_start, window)[:length]
    return covering.max(axis=1)


@dataclass(frozen=True)
class Site:
    start: int  # 0-based, inclusive
    end: int  # 0-based, exclusive
    peak: float  # the best window's score inside the site
    summit: int  # centre of that window (0-based)
    windows: int  # windows at or above the threshold inside the site


def call_sites(length: int, starts: np.ndarray, window: int, scores: np.ndarray,
               threshold: float, track: np.ndarray | None = None) -> list[Site]:
    """Sites: the maximal runs of positions whose profile is at or above `threshold` (overlapping
    windows above it merge into one site). A site's peak is its best window's score, its summit
    that window's centre. A window at or above the threshold lies wholly inside one site."""
    starts, scores = np.asarray(starts), np.asarray(scores, dtype=float)
    track = profile(length, starts, window, scores) if track is None else track  # the profile, when known
    above = track >= threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    sites = []
    for begin, end in zip(edges[::2], edges[1::2], strict=True):
        begin, end = int(begin), int(end)
        inside = (starts >= begin) & (starts + min(window, length) <= end) & (scores >= threshold)
        best = np.flatnonzero(inside)[np.argmax(scores[inside])]
        span = min(window, length)
        sites.append(Site(begin, end, float(scores[best]), int(starts[best]) + span // 2, int(inside.sum())))
    return sites


def sites_table(sites_by_sequence: dict[str, list[Site]]) -> pd.DataFrame:
    """One row per site: sequence id, start, end, peak, summit, windows, name."""
    rows = [{"sequence_id": sid, "start": s.start, "end": s.end, "peak": s.peak, "summit": s.summit,
             "windows": s.windows, "name": f"{sid}:site{i}"}
            for sid, sites in sites_by_sequence.items() for i, s in enumerate(sites, start=1)]
    return pd.DataFrame(rows, columns=["sequence_id", "start", "end", "peak", "summit", "windows", "name"])


def known_sites_found(table: pd.DataFrame, known: dict[str, list[int]], width: int) -> pd.DataFrame:
    """For each known element (sequence id -> 0-based starts, `width` nt long): the called site that
    holds it whole, if any."""
    rows = []
    for sid, starts in known.items():
        calls = table[table.sequence_id == sid]
        for start in starts:
            inside = calls[(calls.start <= start) & (calls.end >= start + width)]
            rows.append({"sequence_id": sid, "start": start, "end": start + width,
                         "in_site": bool(len(inside)), "site": inside.name.iloc[0] if len(inside) else ""})
    return pd.DataFrame(rows, columns=["sequence_id", "start", "end", "in_site", "site"])


def bed_lines(table: pd.DataFrame) -> list[str]:
    """BED6 (chrom = sequence id, 0-based start, exclusive end, name, score 0-1000 = peak x 1000,
    strand +: sites are called on the sequence as given)."""
    return [f"{r.sequence_id}\t{r.start}\t{r.end}\t{r.name}\t{round(r.peak * 1000)}\t+"
            for r in table.itertuples(index=False)]


def bedgraph_lines(sequence_id: str, values: np.ndarray) -> list[str]:
    """A profile as bedGraph: one line per run of equal values (0-based, half-open)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return []
    change = np.flatnonzero(np.diff(values)) + 1
    begins = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(values)]])
    return [f"{sequence_id}\t{b}\t{e}\t{v:.6g}"  # as Python numbers: formatted several times faster
            for b, e, v in zip(begins.tolist(), ends.tolist(), values[begins].tolist(), strict=True)]


def motif_positions(sequence: str, motif: str) -> list[int]:
    """0-based starts of every occurrence (overlapping ones too) of an IUPAC motif (U = T)."""
    pattern = motif_regex(motif)
    return [m.start() for m in re_overlapping(pattern, sequence.upper().replace("U", "T"))]


def re_overlapping(pattern, text: str):
    """Matches of `pattern` at every position, overlapping ones included."""
    position = 0
    while (match := pattern.search(text, position)) is not None:
        yield match
        position = match.start() + 1
