"""Counting sequence motifs written in IUPAC code (e.g. Pumilio's UGUAHAUA) per class."""

from __future__ import annotations

import re

import pandas as pd

from rbp.errors import RbpError

PUMILIO = "UGUAHAUA"
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "U": "T", "R": "[AG]", "Y": "[CT]", "S": "[CG]",
         "W": "[AT]", "K": "[GT]", "M": "[AC]", "B": "[CGT]", "D": "[AGT]", "H": "[ACT]",
         "V": "[ACG]", "N": "[ACGT]"}


def motif_regex(motif: str) -> re.Pattern:
    """A motif in IUPAC letters (RNA or DNA, any case) as a regular expression over DNA letters."""
    bad = [c for c in motif.upper() if c not in IUPAC]
    if not motif or bad:
        what = f"{bad[0]} is not an IUPAC nucleotide code" if bad else "empty"
        raise RbpError(f"motif {motif!r}: {what} (use A, C, G, U/T and R Y S W K M B D H V N)")
    return re.compile("".join(IUPAC[c] for c in motif.upper()))


def motif_share(table: pd.DataFrame, motif: str = PUMILIO) -> pd.DataFrame:
    """Per class: sequences, how many hold the motif at least once, and that share."""
    hits = table.sequence.str.contains(motif_regex(motif))
    out = (table.assign(has_motif=hits).groupby("label")
           .agg(sequences=("id", "size"), with_motif=("has_motif", "sum")).reset_index())
    out["share"] = out.with_motif / out.sequences
    out["class"] = out.label.map({1: "positive", 0: "negative"})
    return out[["class", "label", "sequences", "with_motif", "share"]]
