"""Overlapping k-mers and DNABERT's k-mer vocabulary.

The vocabulary is DNABERT's `vocab.txt`: `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4,
then every k-mer in lexicographic order over the alphabet A, T, C, G (so AAA=5, AAT=6, AAC=7, ...).
"""

from __future__ import annotations

from functools import cache
from itertools import product

import numpy as np

from rbp.errors import RbpError

ALPHABET = "ATCG"  # DNABERT's order, not A, C, G, T
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
K_RANGE = range(3, 7)

# Base codes: A, T, C, G are 0..3 (their digit in the k-mer's base-4 number), 4 any other letter,
# 5 padding beyond the end of a sequence.
_OTHER, _BEYOND = 4, 5
_CODE = np.full(256, _OTHER, dtype=np.int64)
for _i, _base in enumerate(ALPHABET):
    _CODE[ord(_base)] = _i


def check_k(k: int) -> None:
    if k not in K_RANGE:
        raise RbpError(f"k: {k} is not supported; DNABERT has k = 3, 4, 5 or 6")


@cache
def kmer_vocab(k: int) -> tuple[str, ...]:
    """DNABERT's vocabulary for k: the special tokens, then the 4**k k-mers."""
    check_k(k)
    return SPECIAL_TOKENS + tuple("".join(p) for p in product(ALPHABET, repeat=k))


def kmers(sequence: str, k: int) -> list[str]:
    return [sequence[i : i + k] for i in range(len(sequence) - k + 1)]


def kmer_strings(sequences, k: int) -> list[str]:
    """Space-joined overlapping k-mers per sequence: the input format of DNABERT's own scripts."""
    return [" ".join(kmers(s, k)) for s in sequences]


def _base_grid(sequences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sequences as a (N, longest) grid of base codes, padded with _BEYOND, plus their lengths."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    grid = np.full((len(sequences), int(lengths.max(initial=0))), _BEYOND, dtype=np.int64)
    flat = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
    rows = np.repeat(np.arange(len(sequences)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid[rows, np.arange(flat.size) - starts] = _CODE[flat]
    return grid, lengths


def encode_kmers(
    sequences, k: int, add_special_tokens: bool = True, max_length: int | None = None
) -> np.ndarray:
    """Token ids of overlapping k-mers, one row per sequence, right-padded with `[PAD]` (0).

    With `add_special_tokens` a row is `[CLS] k-mers [SEP]` (81 tokens for 81 nt and k=3), as
    DNABERT's tokenizer makes it. A k-mer holding a letter other than A, C, G, T is `[UNK]`.
    `max_length` (counting `[CLS]` and `[SEP]`) keeps the first k-mers, as DNABERT truncates.
    """
    check_k(k)
    sequences = list(sequences)
    if not sequences:
        return np.zeros((0, 2 if add_special_tokens else 0), dtype=np.int64)
    grid, lengths = _base_grid(sequences)
    if grid.shape[1] < k:
        grid = np.pad(grid, ((0, 0), (0, k - grid.shape[1])), constant_values=_BEYOND)
    windows = np.lib.stride_tricks.sliding_window_view(grid, k, axis=1)  # (N, L-k+1, k)
    ids = len(SPECIAL_TOKENS) + windows.clip(max=3) @ (4 ** np.arange(k - 1, -1, -1))
    ids[(windows == _OTHER).any(axis=-1)] = UNK_ID
    ids[(windows == _BEYOND).any(axis=-1)] = PAD_ID
    n_kmers = np.maximum(lengths - k + 1, 0)

    extra = 2 if add_special_tokens else 0
    if max_length is not None:
        if max_length <= extra:
            raise RbpError(f"max_length: {max_length} leaves no room for k-mers")
        keep = max_length - extra
        ids, n_kmers = ids[:, :keep], np.minimum(n_kmers, keep)
        ids[np.arange(ids.shape[1]) >= n_kmers[:, None]] = PAD_ID
    if not add_special_tokens:
        return np.ascontiguousarray(ids[:, : int(n_kmers.max())])
    out = np.zeros((len(sequences), int(n_kmers.max()) + 2), dtype=np.int64)
    out[:, 0] = CLS_ID
    out[:, 1 : 1 + ids.shape[1]] = ids[:, : out.shape[1] - 2]
    out[np.arange(len(sequences)), n_kmers + 1] = SEP_ID
    return out


def encode_nucleotides(sequences, min_width: int = 1) -> np.ndarray:
    """One token per nucleotide, in the vocabulary's scheme: A, T, C, G are 5 to 8 (DNABERT's
    1-mer ids), any other letter `[UNK]`, right-padded with `[PAD]` (0) to the longest sequence and
    to at least `min_width` columns. `mask_kmers` masks these as it masks k-mers."""
    sequences = list(sequences)
    if not sequences:
        return np.zeros((0, min_width), dtype=np.int64)
    grid, _ = _base_grid(sequences)
    if grid.shape[1] < min_width:
        grid = np.pad(grid, ((0, 0), (0, min_width - grid.shape[1])), constant_values=_BEYOND)
    ids = len(SPECIAL_TOKENS) + grid.clip(max=3)
    ids[grid == _OTHER] = UNK_ID
    ids[grid == _BEYOND] = PAD_ID
    return ids


def kmer_counts(sequences, k: int) -> np.ndarray:
    """(N, 4**k) counts of each k-mer in each sequence, columns in the vocabulary's order (over A, T,
    C, G); k-mers holding another letter (N) are not counted."""
    sequences = list(sequences)
    counts = np.zeros((len(sequences), 4**k), dtype=np.float32)
    if not sequences:
        return counts
    grid, _ = _base_grid(sequences)
    if grid.shape[1] < k:
        return counts
    windows = np.lib.stride_tricks.sliding_window_view(grid, k, axis=1)  # (N, L-k+1, k)
    valid = (windows < 4).all(axis=-1)
    ids = windows.clip(max=3) @ (4 ** np.arange(k - 1, -1, -1))
    rows = np.broadcast_to(np.arange(len(sequences))[:, None], ids.shape)
    np.add.at(counts, (rows[valid], ids[valid]), 1)
    return counts


def mask_kmers(ids, fraction: float, generator):
    """A copy of a batch of token ids (torch) with about `fraction` of its k-mer tokens set to `[MASK]`.

    A training-time augmentation (word dropout): `[PAD]`, `[CLS]`, `[SEP]` and `[UNK]` stay as they are.
    `generator` is a torch.Generator on the ids' device, so that a seed fixes the masks.
    """
    import torch

    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    return ids.masked_fill((ids >= len(SPECIAL_TOKENS)) & (draw < fraction), MASK_ID)
