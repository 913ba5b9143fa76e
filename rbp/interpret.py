"""What a cross-validated model learned: attributions of its confident positives, the motifs they
hold, and how those compare with known motifs and with another model's.

Each sequence is explained by the fold model that never trained on it (the one whose test fold
holds it), so the attributions, like the out-of-fold predictions they start from, are of held-out
data. No MLflow here: `rbp.tracking.log_interpretation` logs the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rbp.attribution import METHODS, cls_attention, contributions, integrated_gradients, ism, one_hot
from rbp.errors import RbpError
from rbp.motif_discovery import Motif, discover, match_table, similarity

METHOD_LABELS = {"ism": "in-silico mutagenesis", "ig": "Integrated Gradients", "attention": "[CLS] attention"}


@dataclass
class Interpretation:
    label: str  # the model, as tables name it
    method: str
    table: pd.DataFrame  # id, sequence, fold, probability of the sequences explained, best first
    scores: np.ndarray  # (N, L) one score per nucleotide
    hypothetical: np.ndarray  # (N, L, 4) what motif discovery read
    motifs: list[Motif]
    matches: pd.DataFrame  # rbp.motif_discovery.match_table against the known motifs
    seconds: float

    def summary(self) -> dict:
        """The top motif (the most seqlets), its best known match, and the best match of any motif."""
        top = self.motifs[0] if self.motifs else None
        ranked = self.matches.sort_values("similarity", ascending=False, kind="stable")
        own = ranked[ranked.motif == top.name].head(1) if top else ranked.head(0)
        best = ranked.head(1)
        return {"model": self.label, "method": METHOD_LABELS[self.method], "sequences": len(self.table),
                "motifs": len(self.motifs), "top_motif": top.consensus if top else "",
                "top_motif_share": round(top.share, 3) if top else np.nan,
                "top_motif_match": own.known.iloc[0] if len(own) and own.match.iloc[0] else "",
                "top_motif_similarity": float(own.similarity.iloc[0]) if len(own) else np.nan,
                "best_matching_motif": f"{best.motif.iloc[0]} ({best.consensus.iloc[0]})"
                if len(best) and best.match.iloc[0] else "",
                "best_known_match": best.known.iloc[0] if len(best) and best.match.iloc[0] else "",
                "best_similarity": float(best.similarity.iloc[0]) if len(best) else np.nan,
                "seconds": round(self.seconds, 1)}


def describe_summary(row: dict) -> str:
    """One sentence of an `Interpretation.summary()` row, as given or read back from its CSV (where a
    model without motifs has empty cells): the top motif, and which motif matches a known one (for
    the terminal and the notebook)."""
    def given(key: str):
        value = row.get(key)
        return None if value is None or value == "" or (isinstance(value, float) and math.isnan(value)) else value

    share = float(given("top_motif_share") or 0)
    line = (f"{row['model']}: top motif {given('top_motif') or 'none'} (seqlets in {share:.0%} "
            f"of {row['sequences']} sites explained)")
    if given("top_motif_match"):
        return line + f", matches {row['top_motif_match']} (similarity {float(row['top_motif_similarity']):.2f})"
    if given("best_known_match"):
        return line + (f"; {row['best_matching_motif']} matches {row['best_known_match']} "
                       f"(similarity {float(row['best_similarity']):.2f})")
    return line


def confident_positives(oof: pd.DataFrame, sequences: pd.DataFrame, threshold: float, n: int,
                        length: int | None = None) -> pd.DataFrame:
    """Up to `n` binding sites the model called at or above `threshold` out of fold, the most
    confident first: id, sequence, fold, probability. Attributions are compared position by
    position, so all have one length: `length` (the model's window; None: the most common length),
    longer sequences cut to their centred window of it, shorter ones left out."""
    from rbp.data import center_window

    table = oof[(oof.label == 1) & (oof.probability >= threshold)].merge(sequences[["id", "sequence"]], on="id")
    if table.empty:
        raise RbpError(f"interpret: no binding site was called at or above the threshold {threshold:.3f} out of "
                       "fold; there is nothing confident to explain")
    length = int(length or table.sequence.str.len().mode().iloc[0])
    table = table[table.sequence.str.len() >= length].copy()
    if table.empty:
        raise RbpError(f"interpret: no confident binding site is {length} nt or longer (the model's window)")
    table["sequence"] = center_window(table.sequence.tolist(), length)
    return (table.sort_values("probability", ascending=False, kind="stable").head(n)
            [["id", "sequence", "fold", "probability"]].reset_index(drop=True))


def explain(predictor, table: pd.DataFrame, method: str = "ism", progress: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per-nucleotide scores (N, L) and hypothetical contributions (N, L, 4) of `table`'s sequences,
    each by the fold model that held it out (`fold`)."""
    if method not in METHODS:
        raise RbpError(f"interpret.method: {method!r} is not one of {', '.join(METHODS)}")
    sequences = table.sequence.tolist()
    onehot = one_hot(sequences)
    scores = np.zeros(onehot.shape[:2], dtype=np.float32)
    hypothetical = np.zeros(onehot.shape, dtype=np.float32)
    for fold, rows in table.groupby("fold").indices.items():
        part = [sequences[i] for i in rows]
        if method == "ism":
            hyp = ism(lambda variants, f=int(fold): predictor.probabilities(variants, f, logits=True), part,
                      progress)
            hypothetical[rows], scores[rows] = hyp, contributions(hyp, part)
            continue
        model = predictor.fold_models(int(fold))[0]
        if method == "ig":
            scores[rows] = integrated_gradients(predictor.family, model, part)
        else:
            scores[rows] = cls_attention(predictor.family, model, part)
        hypothetical[rows] = onehot[rows] * scores[rows][:, :, None]
    return scores, hypothetical


def interpret(predictor, table: pd.DataFrame, label: str, method: str = "ism",
              known_motifs: Sequence[str] = (), max_motifs: int = 5, progress: bool = False) -> Interpretation:
    start = time.perf_counter()
    scores, hypothetical = explain(predictor, table, method, progress)
    motifs = discover(table.sequence.tolist(), hypothetical, max_motifs)
    return Interpretation(label, method, table, scores, hypothetical, motifs, match_table(motifs, known_motifs),
                          time.perf_counter() - start)


def shared_motifs(a: Interpretation, b: Interpretation) -> pd.DataFrame:
    """Each of `a`'s motifs against the most similar motif of `b`: whether `a`'s seqlets hold `b`'s
    core (the same similarity as against known motifs, `b`'s core in the place of the known one)."""
    rows = []
    for motif in a.motifs:
        best = max(((similarity(motif.sequence_ppm, other.ppm), other) for other in b.motifs),
                   key=lambda item: item[0][0], default=None)
        if best is None:
            continue
        (score, _, reverse), other = best
        rows.append({a.label: f"{motif.name} ({motif.consensus})", b.label: f"{other.name} ({other.consensus})",
                     "similarity": round(score, 3), "strand": "reverse complement" if reverse else "same"})
    return pd.DataFrame(rows)
