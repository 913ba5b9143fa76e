"""Motifs from attributions, and how they compare with known motifs.

`discover` runs TF-MoDISco (`modisco-lite`) on the hypothetical contributions of a set of sequences
(in-silico mutagenesis gives them directly; a per-nucleotide score gives them as one-hot times
score): it cuts seqlets (short windows of high attribution) and clusters them into patterns, each a
position probability matrix (what the seqlets hold) and a contribution weight matrix (how much each
base matters). A motif here is such a pattern trimmed to its informative core, with its support.

`similarity` scores a discovered motif against a known one written in IUPAC letters: the known motif
becomes a probability matrix (its allowed bases equally likely), slid along the discovered one in
both orientations; the score of an alignment is the sum over aligned columns of the Pearson
correlation of the two columns, divided by the known motif's number of informative columns, so a
motif that covers only half of the known one scores at most 0.5. `MATCH` is the score from which a
discovered motif is said to match. A motif is compared by what its seqlets hold (the whole aligned
pattern, flanks included), not only by its core: a model may lean on the UGUA of UGUAHAUA while its
seqlets hold all eight letters.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rbp.attribution import BASES, one_hot
from rbp.errors import RbpError
from rbp.motifs import IUPAC

MATCH = 0.6  # similarity from which a discovered motif matches a known one
TRIM = 0.3  # a motif's core: the columns whose contribution reaches this share of the strongest


@dataclass
class Motif:
    name: str  # "motif 1": ranked by the number of seqlets
    ppm: np.ndarray  # (w, 4) base probabilities of the core, A C G T
    cwm: np.ndarray  # (w, 4) mean contributions of the core
    seqlets: int
    sequences: int  # distinct sequences holding a seqlet
    share: float  # of the sequences analysed
    starts: list[int] = field(default_factory=list)  # where in its sequence each seqlet's core starts
    reverse: list[bool] = field(default_factory=list)  # seqlet on the reverse complement
    pattern: np.ndarray | None = None  # (W, 4) base probabilities of the whole aligned seqlets, flanks included

    @property
    def consensus(self) -> str:
        """The core's most probable base per column (RNA letters), lower case where none reaches 0.5."""
        return consensus(self.ppm)

    @property
    def pattern_consensus(self) -> str:
        return consensus(self.pattern if self.pattern is not None else self.ppm)

    @property
    def sequence_ppm(self) -> np.ndarray:
        """What the seqlets hold, flanks included: what known motifs are compared with."""
        return self.pattern if self.pattern is not None else self.ppm


def consensus(ppm: np.ndarray) -> str:
    letters = []
    for column in ppm:
        base = "ACGU"[int(np.argmax(column))]
        letters.append(base if column.max() >= 0.5 else base.lower())
    return "".join(letters)


def iupac_ppm(motif: str) -> np.ndarray:
    """(m, 4) probabilities of an IUPAC motif (U read as T): its allowed bases equally likely."""
    rows = []
    for letter in motif.upper().replace("U", "T"):
        if letter not in IUPAC:
            raise RbpError(f"known_motifs: {motif!r} has {letter!r}, not an IUPAC nucleotide letter")
        allowed = set(IUPAC[letter]) & set(BASES)  # "[ACT]" -> A, C, T
        rows.append([1.0 / len(allowed) if base in allowed else 0.0 for base in BASES])
    return np.array(rows)


def _column_correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def similarity(ppm: np.ndarray, known: np.ndarray) -> tuple[float, int, bool]:
    """The best alignment of a known (m, 4) matrix against a discovered (w, 4) one: (score, offset of
    the known motif's first column in the discovered one, reverse complement or not)."""
    informative = [i for i, column in enumerate(known) if column.std() > 0]
    if not informative:
        return 0.0, 0, False
    best = (-np.inf, 0, False)
    for reverse in (False, True):
        query = ppm[::-1, ::-1] if reverse else ppm  # A C G T reversed is the complement
        for offset in range(-len(known) + 1, len(query)):
            total = sum(_column_correlation(query[offset + i], known[i]) for i in informative
                        if 0 <= offset + i < len(query))
            score = total / len(informative)
            if score > best[0]:
                best = (score, offset, reverse)
    return float(best[0]), int(best[1]), bool(best[2])


def match_table(motifs: Sequence[Motif], known_motifs: Sequence[str]) -> pd.DataFrame:
    """One row per (discovered, known) pair: the similarity, the alignment and whether it matches."""
    rows = []
    for known in known_motifs:
        matrix = iupac_ppm(known)
        for motif in motifs:
            score, offset, reverse = similarity(motif.sequence_ppm, matrix)
            rows.append({"motif": motif.name, "consensus": motif.consensus, "seqlets_hold": motif.pattern_consensus,
                         "known": known.upper(),
                         "similarity": round(score, 3), "offset": offset,
                         "strand": "reverse complement" if reverse else "same", "match": score >= MATCH})
    return pd.DataFrame(rows, columns=["motif", "consensus", "seqlets_hold", "known", "similarity", "offset", "strand",
                                       "match"])


def _trim(ppm: np.ndarray, cwm: np.ndarray) -> slice:
    strength = np.abs(cwm).sum(axis=1)
    keep = np.flatnonzero(strength >= TRIM * strength.max())
    return slice(int(keep.min()), int(keep.max()) + 1)


MODISCO = dict(sliding_window_size=10, flank_size=5, min_metacluster_size=20, target_seqlet_fdr=0.2,
               min_passing_windows_frac=0.03, max_passing_windows_frac=0.2, n_leiden_runs=10,
               nearest_neighbors_to_compute=200, trim_to_window_size=16, initial_flank_to_add=3,
               final_flank_to_add=0, final_min_cluster_size=10, min_ic_windowsize=6,
               max_seqlets_per_metacluster=5000)


def warm_up() -> None:
    """Start compiling TF-MoDISco's numba kernels in the background (into numba's on-disk cache,
    so that later runs load them). Call it early, before the attributions are computed: a process
    that calls `discover` first otherwise compiles them then, about 20 s on 2 cores. Where the
    background cannot start (a process with threads of its own, such as a Jupyter kernel), the first
    `discover` compiles them into the cache itself, and later processes load them from there."""
    from modiscolite import precompile

    _cache_kernels()
    precompile.start()


@functools.cache
def _cache_kernels() -> None:
    """Turn on numba's on-disk cache for every TF-MoDISco kernel, once per process. modisco-lite turns
    it on only where it compiles them in forked children, which a process with threads (a Jupyter
    kernel) cannot fork: there every run compiled them again, about 10 s. Where the cache cannot be
    written (a read-only install), a kernel is compiled in memory as before."""
    import importlib
    import pkgutil

    import modiscolite
    from numba.core.dispatcher import Dispatcher

    for module in pkgutil.iter_modules(modiscolite.__path__):
        for kernel in vars(importlib.import_module(f"modiscolite.{module.name}")).values():
            if isinstance(kernel, Dispatcher):
                try:
                    kernel.enable_caching()
                except Exception:  # noqa: BLE001 (numba raises its own errors for an unwritable cache)
                    return


@contextmanager
def _thread_budget():
    """TF-MoDISco's numba kernels on no more threads than torch has (a one-thread job stays on one core),
    and torch's thread count as it was afterwards: numba sets the OpenMP thread count both share, to
    every core by default, and the models scored after it would otherwise compete with the other jobs."""
    import numba
    import torch

    threads, kernels = torch.get_num_threads(), numba.get_num_threads()
    numba.set_num_threads(min(threads, kernels))
    try:
        yield
    finally:
        numba.set_num_threads(kernels)
        torch.set_num_threads(threads)


def discover(sequences: Sequence[str], hypothetical: np.ndarray, max_motifs: int = 5, **options) -> list[Motif]:
    """Motifs of positive contribution (what raises the binding score) from (N, L, 4) hypothetical
    contributions of equal-length sequences, by TF-MoDISco; the most supported first."""
    from modiscolite.tfmodisco import TFMoDISco

    onehot = one_hot(sequences)
    if hypothetical.shape != onehot.shape:
        raise RbpError(f"motif discovery: contributions of shape {hypothetical.shape} for sequences "
                       f"of shape {onehot.shape}")
    settings = {**MODISCO, **options}
    settings["sliding_window_size"] = min(settings["sliding_window_size"], onehot.shape[1] // 3)
    # TF-MoDISco cuts seqlets from windows of the bases' own contributions, thresholded on each sign; a
    # sign no window has makes it fail deep inside (computed as it does, in its precision)
    width, hypothetical = settings["sliding_window_size"], hypothetical.astype(np.float32)
    cumulative = np.cumsum(np.multiply(onehot, hypothetical).sum(axis=2), axis=-1)
    cumulative = np.hstack([np.zeros((len(onehot), 1)), cumulative])
    windows = cumulative[:, width:] - cumulative[:, :-width]
    if not ((windows < 0).any() and (windows >= 0).any()):
        raise RbpError(f"motif discovery: TF-MoDISco needs {width}-nt windows of both signs, and on these sites no "
                       f"window {'lowers' if (windows >= 0).all() else 'raises'} the model's score (a plateau of "
                       "its most confident scores): no motif search")
    _cache_kernels()
    with _thread_budget():
        try:
            positive, _ = TFMoDISco(one_hot=onehot, hypothetical_contribs=hypothetical, **settings)
        except ZeroDivisionError:  # its seqlet thresholds divide by the null's draws of each sign
            raise RbpError(f"motif discovery: TF-MoDISco's null model of the {width}-nt windows drew no "
                           "window of one sign (nearly every window moves the model's score one way): "
                           "no motif search") from None
    motifs = []
    for pattern in sorted(positive or [], key=lambda p: -len(p.seqlets))[:max_motifs]:
        ppm, cwm = np.asarray(pattern.sequence), np.asarray(pattern.contrib_scores)
        core = _trim(ppm, cwm)
        examples = {s.example_idx for s in pattern.seqlets}
        motifs.append(Motif(
            name=f"motif {len(motifs) + 1}", ppm=ppm[core], cwm=cwm[core], seqlets=len(pattern.seqlets),
            sequences=len(examples), share=len(examples) / len(onehot),
            starts=[int(s.start + (core.start if not s.is_revcomp else len(ppm) - core.stop))
                    for s in pattern.seqlets],
            reverse=[bool(s.is_revcomp) for s in pattern.seqlets], pattern=ppm))
    return motifs
