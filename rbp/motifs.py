"""Counting sequence motifs written in IUPAC code (e.g. Pumilio's UGUAHAUA) per class."""

from __future__ import annotations

import re

import pandas as pd

PUMILIO = "UGUAHAUA"
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "U": "T", "R": "[AG]", "Y": "[CT]", "S": "[CG]",
         "W": "[AT]", "K": "[GT]", "M": "[AC]", "B": "[CGT]", "D": "[AGT]", "H": "[ACT]",
         "V": "[ACG]", "N": "[ACGT]"}


def motif_regex(motif: str) -> re.Pattern:
    return re.compile("".join(IUPAC[c] for c in motif.upper()))


def motif_share(table: pd.DataFrame, motif: str = PUMILIO) -> pd.DataFrame:
    """Per class: sequences, how many hold the motif at least once, and that share."""
    hits = table.sequence.str.contains(motif_regex(motif))
    out = (table.assign(has_motif=hits).groupby("label")
           .agg(sequences=("id", "size"), with_motif=("has_motif", "sum")).reset_index())
    out["share"] = out.with_motif / out.sequences
    out["class"] = out.label.map({1: "positive", 0: "negative"})
    return out[["class", "label", "sequences", "with_motif", "share"]]
