"""Sequences that overlap: CLIP sets often hold several windows of one binding site, shifted by a few
nt. If such windows fall on both sides of a split, the model is scored on sequences it has half seen,
and the validation (or test) figure says more than the model can do on new sites.

`overlap_groups` puts sequences that share a stretch of at least `overlap` nt (exactly, ignoring case
and U/T) into one group, transitively; the splits of `rbp.data` keep each group on one side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_CODES = np.zeros(256, dtype=np.uint64)
for _i, _letters in enumerate(("Aa", "Cc", "Gg", "TtUu"), start=1):
    for _letter in _letters:
        _CODES[ord(_letter)] = _i
_CODES[_CODES == 0] = 5  # N and any other letter: one symbol of its own
_BASE = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit multiplier: stretches hash apart, modulo 2**64


def stretch_hashes(sequences: Sequence[str], overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, sequence number) of every stretch of `overlap` nt of every sequence: a polynomial hash
    modulo 2**64 (equal stretches, equal hashes; unequal ones collide with odds of about 2**-64 a pair).
    About 24 bytes of memory per nt."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    codes = _CODES[np.frombuffer("".join(sequences).encode("ascii", "replace"), dtype=np.uint8)]
    if len(codes) < overlap:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    hashes = np.zeros(len(codes) - overlap + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(overlap):
            hashes *= _BASE
            hashes += codes[offset:offset + len(hashes)]
    counts = np.maximum(lengths - overlap + 1, 0)  # the stretches of each sequence, none across two
    owner = np.repeat(np.arange(len(sequences)), counts)
    offsets = np.cumsum(lengths) - lengths  # where each sequence starts in the joined codes
    starts = np.repeat(offsets, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    return hashes[starts], owner


def overlap_groups(sequences: Sequence[str], overlap: int) -> np.ndarray:
    """A group number per sequence: sequences sharing a stretch of `overlap` nt, directly or through
    others, share a group; a sequence shorter than `overlap` is a group of its own."""
    if overlap < 1:
        raise ValueError(f"overlap must be at least 1 nt, got {overlap}")
    n = len(sequences)
    hashes, owner = stretch_hashes(sequences, overlap)
    order = np.argsort(hashes, kind="stable")
    hashes, owner = hashes[order], owner[order]
    same = hashes[1:] == hashes[:-1]  # a stretch held again: join its holder to the one before
    edges = coo_matrix((np.ones(int(same.sum()), dtype=np.int8), (owner[:-1][same], owner[1:][same])), shape=(n, n))
    return connected_components(edges, directed=False)[1].astype(np.int64)
