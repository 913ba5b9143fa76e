"""Reading FASTA files of RNA or DNA into records over the DNA alphabet (U becomes T)."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rbp.errors import RbpError

AMBIGUOUS_POLICIES = ("skip", "keep", "error")
NUCLEOTIDES = frozenset("ACGTU")
# IUPAC ambiguity codes: a record holding one is skipped, kept (its k-mers become [UNK]) or refused.
AMBIGUOUS = frozenset("NRYSWKMBDHV")
_GZIP_MAGIC = b"\x1f\x8b"
MAX_BYTES = 512 * 2**20  # a FASTA file (uncompressed) larger than this is refused, not read into memory


class FastaError(RbpError):
    """A FASTA file that cannot be read; the message names the file and, where it applies, the line."""


@dataclass(frozen=True)
class Record:
    id: str
    sequence: str  # upper-case DNA alphabet: A, C, G, T (and IUPAC codes under the `keep` policy)


@dataclass
class FastaFile:
    path: Path
    records: list[Record]
    skipped: list[str] = field(default_factory=list)  # ids dropped for ambiguous bases (policy `skip`)


def _text(path: Path) -> str:
    if not path.exists():
        raise FastaError(f"{path}: file not found")
    if path.is_dir():
        raise FastaError(f"{path}: is a directory, not a FASTA file")
    if not path.is_file():  # reading a device, FIFO or socket may never end
        raise FastaError(f"{path}: not a regular file (a device, pipe or socket); give a FASTA file")
    with path.open("rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if gzipped else path.open("rb")) as fh:
            raw = fh.read(MAX_BYTES + 1)  # never more than the limit in memory, whatever the file holds
    except (OSError, EOFError) as exc:
        what = "damaged gzip file" if gzipped else "cannot be read"
        raise FastaError(f"{path}: {what} ({exc})") from None
    if len(raw) > MAX_BYTES:
        raise FastaError(f"{path}: more than {MAX_BYTES // 2**20} MiB of FASTA text"
                         f"{' once decompressed' if gzipped else ''}; split it or keep the sequences to train on")
    if b"\x00" in raw:
        raise FastaError(f"{path}: binary content, not a FASTA text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FastaError(f"{path}: not UTF-8 or ASCII text, not a FASTA file") from None


def read_fasta(path: str | Path, ambiguous: str = "skip") -> FastaFile:
    """Read a (possibly gzipped, multi-line, lower-case) FASTA file.

    Sequences are upper-cased and U is written as T. `ambiguous` says what happens to a record with
    an IUPAC ambiguity code such as N: `skip` drops it (its id lands in `skipped`), `keep` keeps it,
    `error` refuses the file.
    """
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise RbpError(f"ambiguous: {ambiguous!r} is not one of {', '.join(AMBIGUOUS_POLICIES)}")
    path = Path(path)
    text = _text(path)
    if not text.strip():
        raise FastaError(f"{path}: empty file, no FASTA records")
    result = FastaFile(path=path, records=[])
    for rid, line_no, sequence in _parse(path, text):
        if not sequence:
            raise FastaError(f"{path}, line {line_no}: header '>{rid}' has no sequence")
        if AMBIGUOUS.intersection(sequence):
            if ambiguous == "error":
                codes = "".join(sorted(AMBIGUOUS.intersection(sequence)))
                raise FastaError(
                    f"{path}, line {line_no}: record '{rid}' holds ambiguous bases ({codes}); "
                    "set `ambiguous: skip` or `ambiguous: keep` to accept the file"
                )
            if ambiguous == "skip":
                result.skipped.append(rid)
                continue
        result.records.append(Record(rid, sequence))
    return result


def _parse(path: Path, text: str) -> Iterator[tuple[str, int, str]]:
    """(id, header line, sequence upper-cased with U as T) of each record, checked line by line."""
    seen: dict[str, int] = {}
    header: tuple[str, int] | None = None  # (id, line number) of the record being read
    chunks: list[str] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if header is not None:
                yield *header, "".join(chunks).upper().replace("U", "T")
            fields = line[1:].split()
            if not fields:
                raise FastaError(f"{path}, line {line_no}: header without an id")
            rid = fields[0]
            if rid in seen:
                raise FastaError(
                    f"{path}, line {line_no}: duplicate id '{rid}' (first at line {seen[rid]})"
                )
            seen[rid] = line_no
            header, chunks = (rid, line_no), []
            continue
        if header is None:
            raise FastaError(
                f"{path}, line {line_no}: text before the first '>' header; not a FASTA file?"
            )
        line = re.sub(r"\s+", "", line)
        bad = set(line.upper()) - NUCLEOTIDES - AMBIGUOUS
        if bad:
            shown = ", ".join(repr(c) for c in sorted(bad)[:5])
            raise FastaError(
                f"{path}, line {line_no}: characters that are not nucleotides ({shown}) "
                f"in record '{header[0]}'"
            )
        chunks.append(line)
    if header is not None:
        yield *header, "".join(chunks).upper().replace("U", "T")


def write_fasta(path: str | Path, records: list[Record], rna: bool = False, width: int = 60) -> None:
    """Write records, wrapped at `width`; with `rna`, T is written as U."""
    with open(path, "w") as out:
        for rec in records:
            seq = rec.sequence.replace("T", "U") if rna else rec.sequence
            out.write(f">{rec.id}\n")
            for i in range(0, len(seq), width):
                out.write(seq[i : i + width] + "\n")
