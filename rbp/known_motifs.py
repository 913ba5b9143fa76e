"""Known binding motifs of RNA-binding proteins, with where each was reported: what `07_interpret` matches
the motifs a model learned against when a data set's name names the protein.

The table is short on purpose: only proteins whose sequence preference is well established and simple
enough to write as an IUPAC motif (U as in RNA). A data set names its protein as a word of its name
(`24_PARCLIP_QKI_hg19`, `pum2`); a letter after the name marks a replicate (`ELAVL1A`). Proteins
without a motif here (AGO, whose sites follow the miRNA they carry; FUS, EWSR1 and TAF15, whose
preference is weak or structural; eIF4AIII, deposited by position) get none: their interpretation
shows what was discovered, matched against nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownMotif:
    protein: str  # the usual name
    aliases: tuple[str, ...]  # other names a data set may use
    motifs: tuple[str, ...]  # IUPAC, RNA alphabet
    what: str  # the preference in words
    source: str  # where it was reported


KNOWN: tuple[KnownMotif, ...] = (
    KnownMotif("PUM2", ("PUM1", "Pumilio"), ("UGUAHAUA",), "the Pumilio response element",
               "Hafner et al. 2010, Cell 141:129 (PAR-CLIP of PUM2)"),
    KnownMotif("QKI", ("Quaking",), ("ACUAAY",), "the QKI response element's core, ACUAA",
               "Galarneau & Richard 2005, Nat Struct Mol Biol 12:691; Hafner et al. 2010, Cell 141:129"),
    KnownMotif("ELAVL1", ("HuR",), ("UUUAUUU", "UUUUUUU"), "U-rich and AU-rich elements",
               "Lebedeva et al. 2011, Mol Cell 43:340; Mukherjee et al. 2011, Mol Cell 43:327 (PAR-CLIP of HuR)"),
    KnownMotif("TIA1", ("TIAL1", "TIAR"), ("UUUUUUU",), "U-rich stretches, downstream of 5' splice sites",
               "Wang et al. 2010, PLoS Biol 8:e1000530 (iCLIP of TIA1 and TIAL1)"),
    KnownMotif("hnRNPC", ("HNRNPC",), ("UUUUUUU",), "poly-U tracts",
               "König et al. 2010, Nat Struct Mol Biol 17:909 (iCLIP of hnRNP C)"),
    KnownMotif("U2AF65", ("U2AF2",), ("UUUUUUUU", "YYYYYYYY"), "the polypyrimidine tract upstream of 3' splice sites",
               "Zarnack et al. 2013, Cell 152:453 (iCLIP of U2AF65)"),
    KnownMotif("hnRNPL", ("HNRNPL",), ("CACACA",), "CA repeats and CA-rich elements",
               "Hui et al. 2005, EMBO J 24:1988"),
)


def _names(entry: KnownMotif) -> list[str]:
    return [entry.protein, *entry.aliases]


def _words(dataset: str) -> list[str]:
    return [word for word in re.split(r"[^A-Za-z0-9]+", dataset) if word]


def _names_protein(word: str, name: str) -> bool:
    """`word` is the protein's name, or the name with one capital letter after it (a replicate: ELAVL1A)."""
    if word.lower() == name.lower():
        return True
    return len(word) == len(name) + 1 and word[:-1].lower() == name.lower() and word[-1].isupper()


def known_for(dataset: str) -> list[KnownMotif]:
    """The known motifs of the proteins a data set's name names (none when it names none here)."""
    words = _words(dataset)
    return [entry for entry in KNOWN if any(_names_protein(w, n) for w in words for n in _names(entry))]


def describe(entries: list[KnownMotif]) -> str:
    """One Markdown sentence naming the motifs and their sources."""
    return " ".join(f"{e.protein}: {', '.join(e.motifs)} ({e.what}; {e.source})." for e in entries)
