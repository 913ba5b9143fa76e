"""A seeded synthetic stand-in for a CLIP data set, with a known answer, so the main job runs (and
can be judged) before a user has data.

Shaped like PUM2 (3101 + 3101 sequences of 81 nt). Positives: a 3' UTR-like, AU-rich background
and, in 45 % of them (PUM2: 43 % hold UGUAHAUA), a Pumilio-like element UGUAHAUA near the centre,
drawn from a position weight matrix (so it varies as real sites do). Negatives: a less AU-rich
background and, in some of them, a decoy: the element's first half (UGUAH) followed by background,
which a model must tell apart from a whole element.

Because the generator is known, so is the best any model can do: `oracle_scores` is the exact
log-likelihood ratio of positive against negative under it, and `ceiling_auc` the ROC AUC of that
score on a labelled set (the AUC of the planted truth). No classifier beats it in expectation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.metrics import roc_auc_score

from rbp.fasta import Record, write_fasta

N_PER_CLASS = 3101
LENGTH = 81
BASES = "ACGT"
ELEMENT_SHARE = 0.45  # positives that carry an element (PUM2: 43 % hold UGUAHAUA)
DECOY_SHARE = 0.3  # negatives that carry a decoy (the element's first five positions)
JITTER = 12  # the element starts within ± this many nt of the centred position
# Background compositions over A, C, G, T(U): both AU-rich like 3' UTRs, positives a little more.
POSITIVE_BACKGROUND = np.array([0.30, 0.19, 0.20, 0.31])
NEGATIVE_BACKGROUND = np.array([0.26, 0.23, 0.24, 0.27])
TRANSCRIPT_BACKGROUND = np.array([0.22, 0.28, 0.28, 0.22])  # between the sites of `make_transcript`
# The element UGUAHAUA as a position weight matrix (rows: positions; columns: A, C, G, T).
ELEMENT = np.array([
    [0.02, 0.02, 0.02, 0.94],  # U
    [0.02, 0.02, 0.94, 0.02],  # G
    [0.02, 0.02, 0.02, 0.94],  # U
    [0.94, 0.02, 0.02, 0.02],  # A
    [0.34, 0.32, 0.02, 0.32],  # H (A, C or U)
    [0.90, 0.03, 0.04, 0.03],  # A
    [0.03, 0.03, 0.04, 0.90],  # U
    [0.90, 0.03, 0.04, 0.03],  # A
])
DECOY_LENGTH = 5  # a decoy is the element's first five positions (UGUAH), then background
CONSENSUS = "UGUAHAUA"


def _starts(length: int) -> np.ndarray:
    centre = length // 2 - len(ELEMENT) // 2
    return np.arange(max(0, centre - JITTER), min(length - len(ELEMENT), centre + JITTER) + 1)


def _draw(rng: np.random.Generator, probabilities: np.ndarray, n: int) -> np.ndarray:
    """n draws of base indices, one per row of `probabilities` (positions × 4)."""
    cumulative = probabilities.cumsum(axis=-1)
    cumulative[:, -1] = 1.0  # rounding must not leave a draw above the last base
    return (rng.random((n, len(probabilities)))[..., None] > cumulative[None]).sum(axis=-1)


def make_synthetic(seed: int = 0, n_per_class: int = N_PER_CLASS, length: int = LENGTH):
    """Positive and negative records (DNA alphabet), deterministic for a seed."""
    if length < len(ELEMENT):
        raise ValueError(f"synthetic sequences need at least {len(ELEMENT)} nt, got {length}")
    rng = np.random.default_rng(seed)
    starts = _starts(length)
    pos = _draw(rng, np.tile(POSITIVE_BACKGROUND, (length, 1)), n_per_class)
    for row in np.flatnonzero(rng.random(n_per_class) < ELEMENT_SHARE):
        start = rng.choice(starts)
        pos[row, start:start + len(ELEMENT)] = _draw(rng, ELEMENT, 1)[0]
    neg = _draw(rng, np.tile(NEGATIVE_BACKGROUND, (length, 1)), n_per_class)
    for row in np.flatnonzero(rng.random(n_per_class) < DECOY_SHARE):
        start = rng.choice(starts)
        neg[row, start:start + DECOY_LENGTH] = _draw(rng, ELEMENT[:DECOY_LENGTH], 1)[0]
    letters = np.array(list(BASES))
    positives = [Record(f"synth_pos_{i + 1}", "".join(letters[r])) for i, r in enumerate(pos)]
    negatives = [Record(f"synth_neg_{i + 1}", "".join(letters[r])) for i, r in enumerate(neg)]
    return positives, negatives


def _site_term(onehot: np.ndarray, pwm: np.ndarray, background: np.ndarray, share: float,
               starts: np.ndarray) -> np.ndarray:
    """log[(1 - share) + share × mean over starts of P(window | site) / P(window | background)]."""
    ratio = np.log(pwm) - np.log(background)[None, :]  # positions × 4
    windows = np.stack([(onehot[:, s:s + len(pwm)] * ratio).sum(axis=(1, 2)) for s in starts], axis=1)
    return np.logaddexp(np.log1p(-share), logsumexp(windows, axis=1, b=share / len(starts)))


def oracle_scores(sequences) -> np.ndarray:
    """log P(sequence | positive) − log P(sequence | negative) under the generator, exactly (DNA or
    RNA, upper case; sequences of one length). The best possible score: ranking by it gives the ceiling."""
    sequences = [s.upper().replace("U", "T") for s in sequences]
    lengths = {len(s) for s in sequences}
    if len(lengths) != 1:
        found = ", ".join(map(str, sorted(lengths)[:5])) or "no sequences"
        raise ValueError(f"oracle_scores: needs sequences of one length, as the generator makes (got {found})")
    length = lengths.pop()
    codes = np.array([[BASES.index(c) for c in s] for s in sequences])
    onehot = np.eye(4)[codes]
    starts = _starts(length)
    background = onehot @ (np.log(POSITIVE_BACKGROUND) - np.log(NEGATIVE_BACKGROUND))
    positive = _site_term(onehot, ELEMENT, POSITIVE_BACKGROUND, ELEMENT_SHARE, starts)
    negative = _site_term(onehot, ELEMENT[:DECOY_LENGTH], NEGATIVE_BACKGROUND, DECOY_SHARE, starts)
    return background.sum(axis=1) + positive - negative


def ceiling_auc(table: pd.DataFrame) -> float:
    """The ROC AUC of the planted truth (`oracle_scores`) on a labelled table (sequence, label)."""
    return float(roc_auc_score(table.label, oracle_scores(table.sequence)))


def make_transcript(seed: int = 0, length: int = 5000, sites: int = 6) -> tuple[Record, list[int]]:
    """A synthetic transcript with `sites` binding sites planted at known, well-separated positions.

    A planted site looks like the demo's positives: an 81-nt AU-rich stretch (the positives'
    composition) with a Pumilio-like element (UGUAHAUA, H drawn from A, C, U) at its centre. Between
    sites the transcript is GC-richer (`TRANSCRIPT_BACKGROUND`), so a model that learned the demo shows
    peaks where the sites are. Returns the record (DNA alphabet) and the 0-based starts of the elements.
    """
    spacing = length // max(sites, 1)
    if sites < 1 or spacing < 2 * LENGTH:
        raise ValueError(f"{sites} sites of {LENGTH} nt do not fit {length} nt with room between them")
    rng = np.random.default_rng(seed)
    codes = _draw(rng, np.tile(TRANSCRIPT_BACKGROUND, (length, 1)), 1)[0]
    consensus = np.array([BASES.index(c) for c in CONSENSUS.replace("U", "T").replace("H", "A")])
    starts = []
    for i in range(sites):
        centre = i * spacing + spacing // 2 + int(rng.integers(-(spacing - LENGTH) // 4, (spacing - LENGTH) // 4 + 1))
        site = centre - LENGTH // 2
        codes[site:site + LENGTH] = _draw(rng, np.tile(POSITIVE_BACKGROUND, (LENGTH, 1)), 1)[0]
        element = consensus.copy()
        element[4] = rng.choice([0, 1, 3])  # H: A, C or T
        start = centre - len(ELEMENT) // 2
        codes[start:start + len(ELEMENT)] = element
        starts.append(start)
    return Record(f"synthetic_transcript_{seed}", "".join(np.array(list(BASES))[codes])), starts


def transcript_variants(record: Record, planted: list[int], far: int = 2, seed: int = 0) -> pd.DataFrame:
    """Variants of `make_transcript`'s transcript whose answer is known: per planted element, two that
    break its UGUA core (its second U, then its A, each to C: `core`), and `far` per gap between
    elements that change a base at least two site lengths away from every element (`far`). A model that
    learned the element should lower the score of the first and leave the second alone. Columns:
    sequence_id, position (1-based), ref, alt (RNA letters), name, kind."""
    rng = np.random.default_rng(seed)
    sequence = record.sequence.upper().replace("U", "T")
    rows = []
    for i, start in enumerate(planted, start=1):
        for offset in (2, 3):  # UGUA: its second U, then its A
            position = start + offset + 1
            rows.append((position, sequence[position - 1], "C", f"element{i}_core{offset + 1}", "core"))
    elements = np.asarray(planted)
    if not len(elements):
        raise ValueError("transcript_variants: no planted element to break or to stay away from")
    allowed = np.flatnonzero([np.abs(p - elements).min() >= 2 * LENGTH for p in range(len(sequence))])
    gaps = np.split(allowed, np.flatnonzero(np.diff(allowed) > 1) + 1) if len(allowed) else []
    for g, gap in enumerate(gaps, start=1):
        for j, index in enumerate(sorted(rng.choice(gap, size=min(far, len(gap)), replace=False)), start=1):
            ref = sequence[index]
            alt = rng.choice([b for b in BASES if b != ref])
            rows.append((int(index) + 1, ref, str(alt), f"gap{g}_far{j}", "far"))
    frame = pd.DataFrame(rows, columns=["position", "ref", "alt", "name", "kind"])
    frame[["ref", "alt"]] = frame[["ref", "alt"]].apply(lambda column: column.str.replace("T", "U"))
    return frame.assign(sequence_id=record.id)[["sequence_id", "position", "ref", "alt", "name", "kind"]]


def write_transcript(path: str | Path, seed: int = 0, length: int = 5000, sites: int = 6) -> list[int]:
    """Write `make_transcript` as FASTA (RNA alphabet); returns the planted elements' starts."""
    record, starts = make_transcript(seed, length, sites)
    write_fasta(path, [record], rna=True)
    return starts


def write_synthetic(directory: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write `positives.fa` and `negatives.fa` (RNA alphabet, like CLIP data) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    positives, negatives = make_synthetic(seed)
    pos_path, neg_path = directory / "positives.fa", directory / "negatives.fa"
    write_fasta(pos_path, positives, rna=True)
    write_fasta(neg_path, negatives, rna=True)
    return pos_path, neg_path


def write_planted(directory: str | Path, element: str = "UGCAUGU", n_per_class: int = 600, length: int = 81,
                  share: float = 0.6, seed: int = 0) -> tuple[Path, Path]:
    """A plainer synthetic set around another element (default the RBFOX site UGCAUGU): uniform
    background; `share` of the positives hold `element` near the centre, no negative holds it.
    Writes `positives.fa` and `negatives.fa` (RNA alphabet) into `directory`."""
    rng = np.random.default_rng(seed)
    site = element.upper().replace("U", "T")

    def draw(n: int, planted: bool, prefix: str) -> list[Record]:
        records = []
        while len(records) < n:
            sequence = "".join(rng.choice(list(BASES), length))
            if planted and rng.random() < share:
                start = length // 2 - len(site) // 2 + int(rng.integers(-JITTER, JITTER + 1))
                sequence = sequence[:start] + site + sequence[start + len(site):]
            elif site in sequence:
                continue  # only planted sites count
            records.append(Record(f"{prefix}{len(records) + 1}", sequence))
        return records

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pos_path, neg_path = directory / "positives.fa", directory / "negatives.fa"
    write_fasta(pos_path, draw(n_per_class, True, "pos"), rna=True)
    write_fasta(neg_path, draw(n_per_class, False, "neg"), rna=True)
    return pos_path, neg_path
