"""A seeded synthetic stand-in for a CLIP data set, so the main job runs before a user has data.

Shaped like PUM2 (3101 + 3101 sequences of 81 nt): background with a 3' UTR-like composition
(AU-rich), and a Pumilio response element UGUAHAUA (H = A, C or U) planted near the centre of a
share of the positives. It is a smoke test for the pipeline, not a benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rbp.fasta import Record, write_fasta

N_PER_CLASS = 3101
LENGTH = 81
MOTIF_SHARE = 0.45  # share of positives with a planted element (PUM2: 43% hold UGUAHAUA); the rest are background
BASES = np.array(list("ACGT"))
UTR3_COMPOSITION = np.array([0.28, 0.20, 0.22, 0.30])  # A, C, G, T(U): 3' UTRs are AU-rich
H = np.array(list("ACT"))


def _background(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    return rng.choice(BASES, size=(n, length), p=UTR3_COMPOSITION)


def make_synthetic(seed: int = 0, n_per_class: int = N_PER_CLASS, length: int = LENGTH):
    """Positive and negative records (DNA alphabet), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    pos = _background(rng, n_per_class, length)
    carriers = np.flatnonzero(rng.random(n_per_class) < MOTIF_SHARE)
    for row in carriers:
        motif = list("TGTA") + [rng.choice(H)] + list("ATA")
        start = length // 2 - 4 + int(rng.integers(-12, 13))
        pos[row, start : start + 8] = motif
    neg = _background(rng, n_per_class, length)
    positives = [Record(f"synth_pos_{i + 1}", "".join(r)) for i, r in enumerate(pos)]
    negatives = [Record(f"synth_neg_{i + 1}", "".join(r)) for i, r in enumerate(neg)]
    return positives, negatives


def write_synthetic(directory: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write `positives.fa` and `negatives.fa` (RNA alphabet, like CLIP data) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    positives, negatives = make_synthetic(seed)
    pos_path, neg_path = directory / "positives.fa", directory / "negatives.fa"
    write_fasta(pos_path, positives, rna=True)
    write_fasta(neg_path, negatives, rna=True)
    return pos_path, neg_path
