"""Reading FASTA files of RNA or DNA into records over the DNA alphabet (U becomes T).

A file is read as a stream, a line at a time: memory holds the records kept, not the file. Its size
is checked before any record is made: a plain file by its length on disk, a gzipped one by
decompressing it once without keeping anything, so a file too large to read (or a decompression
bomb) costs neither memory nor more than one pass to refuse.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rbp.errors import RbpError

AMBIGUOUS_POLICIES = ("skip", "keep", "error")
NUCLEOTIDES = frozenset("ACGTU")
# IUPAC ambiguity codes: a record holding one is skipped, kept (its k-mers become [UNK]) or refused.
AMBIGUOUS = frozenset("NRYSWKMBDHV")
_GZIP_MAGIC = b"\x1f\x8b"
MAX_BYTES = 512 * 2**20  # a FASTA file (uncompressed) larger than this is refused before it is read
BOMB_RATIO = 50  # a gzip file past the limit that expands more than this many-fold is called a bomb
_CHUNK = 2**20  # bytes read at a time
_SNIFF = 8000  # a NUL byte in the first bytes (as git and grep judge) marks a binary file
_VALID = str.maketrans("", "", "".join(NUCLEOTIDES | AMBIGUOUS))


class FastaError(RbpError):
    """A FASTA file that cannot be read; the message names the file and, where it applies, the line."""


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    sequence: str  # upper-case DNA alphabet: A, C, G, T (and IUPAC codes under the `keep` policy)


@dataclass
class FastaFile:
    path: Path
    records: list[Record]
    skipped: list[str] = field(default_factory=list)  # ids dropped for ambiguous bases (policy `skip`)
    labels: array | None = None  # a labelled file's label per kept record (0 or 1), read from its header


def label_pattern(key: str) -> re.Pattern:
    """`key:VALUE` or `key=VALUE` as a word of a header (`> chr1,+,367697,367797; class:1`)."""
    return re.compile(rf"(?<![\w.-]){re.escape(key)}\s*[:=]\s*([^\s;,|]*)")


def header_label(header: str, pattern: re.Pattern, key: str, where: str) -> int:
    """The 0/1 label a header carries under `key`; `where` (file, line) names it in the error."""
    found = pattern.findall(header)
    if not found:
        raise FastaError(f"{where}: header '{header}' has no label; a labelled FASTA names each record's class "
                         f"in its header, as {key}:0 or {key}:1")
    if len(set(found)) > 1 or found[0] not in ("0", "1"):
        shown = ", ".join(f"{key}:{value}" for value in dict.fromkeys(found))
        raise FastaError(f"{where}: header '{header}' gives the label {shown}; a label must be 0 or 1")
    return int(found[0])


def _is_gzip(path: Path) -> bool:
    if not path.exists():
        raise FastaError(f"{path}: file not found")
    if path.is_dir():
        raise FastaError(f"{path}: is a directory, not a FASTA file")
    if not path.is_file():  # reading a device, FIFO or socket may never end
        raise FastaError(f"{path}: not a regular file (a device, pipe or socket); give a FASTA file")
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _too_large(path: Path, gzipped: bool) -> str:
    return (f"{path}: more than {MAX_BYTES // 2**20} MiB of FASTA text{' once decompressed' if gzipped else ''}; "
            "split it or keep the sequences to train on")


def _check_size(path: Path, gzipped: bool) -> None:
    """Refuse a file whose text exceeds MAX_BYTES, reading at most one chunk at a time."""
    size = path.stat().st_size
    if not gzipped:
        if size > MAX_BYTES:
            raise FastaError(_too_large(path, False))
        return
    total = 0
    with _damage(path, True), gzip.open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            total += len(chunk)
            if total > MAX_BYTES:
                if total > BOMB_RATIO * size:
                    raise FastaError(f"{path}: a decompression bomb: {size:,} bytes of gzip expand past "
                                     f"{MAX_BYTES // 2**20} MiB (more than {BOMB_RATIO}-fold); refused unread")
                raise FastaError(_too_large(path, True))


class _damage:
    """Turns a read error of the file into one FastaError naming it."""

    def __init__(self, path: Path, gzipped: bool):
        self.path, self.gzipped = path, gzipped

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, (OSError, EOFError, zlib.error)) and not isinstance(exc, FastaError):
            what = "damaged gzip file" if self.gzipped else "cannot be read"
            raise FastaError(f"{self.path}: {what} ({exc})") from None
        if isinstance(exc, UnicodeDecodeError):
            raise FastaError(f"{self.path}: not UTF-8 or ASCII text, not a FASTA file") from None
        return False


def _lines(path: Path, gzipped: bool) -> Iterator[str]:
    """The file's lines, decoded, read a chunk at a time (after `_check_size`)."""
    with _damage(path, gzipped), (gzip.open(path, "rb") if gzipped else path.open("rb")) as raw:
        stream = io.BufferedReader(raw, _CHUNK) if gzipped else raw
        if b"\x00" in stream.peek(_SNIFF)[:_SNIFF]:
            raise FastaError(f"{path}: binary content, not a FASTA text file")
        for line in io.TextIOWrapper(stream, encoding="utf-8-sig", newline=None):
            if "\x00" in line:
                raise FastaError(f"{path}: binary content, not a FASTA text file")
            yield line


def read_fasta(path: str | Path, ambiguous: str = "skip", label_key: str | None = None) -> FastaFile:
    """Read a (possibly gzipped, multi-line, lower-case) FASTA file.

    Sequences are upper-cased and U is written as T. `ambiguous` says what happens to a record with
    an IUPAC ambiguity code such as N: `skip` drops it (its id lands in `skipped`), `keep` keeps it,
    `error` refuses the file. With `label_key`, the file is labelled: every header carries its
    record's class as `KEY:0` or `KEY:1` (`KEY=1` too), read into `labels`; a header without one, or
    with another value, is refused by line. A labelled record's id loses a trailing `;` or `,`.
    """
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise RbpError(f"ambiguous: {ambiguous!r} is not one of {', '.join(AMBIGUOUS_POLICIES)}")
    path = Path(path)
    gzipped = _is_gzip(path)
    _check_size(path, gzipped)
    result = FastaFile(path=path, records=[], labels=array("b") if label_key else None)
    pattern = label_pattern(label_key) if label_key else None
    for rid, line_no, sequence, header in _parse(path, _lines(path, gzipped)):
        if pattern is not None:  # checked on every record, also one skipped for ambiguous bases
            label = header_label(header, pattern, label_key, f"{path}, line {line_no}")
            rid = rid.rstrip(";,") or rid  # `> chr1,+,367697,367797; class:1`: the id ends before the label
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
        if pattern is not None:
            result.labels.append(label)
    if not result.records and not result.skipped:
        raise FastaError(f"{path}: empty file, no FASTA records")
    return result


def _parse(path: Path, lines: Iterable[str]) -> Iterator[tuple[str, int, str, str]]:
    """(id, header line, sequence upper-cased with U as T, header text) of each record, checked line by line. A
    record's sequence grows in one byte buffer, so reading it costs about twice its length at most."""
    hashes = array("q")  # each id's hash: 8 bytes a record, where a set of ids costs about 40
    header: tuple[str, int] | None = None  # (id, line number) of the record being read
    text = ""  # its header, without the '>'
    sequence = bytearray()
    for line_no, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if header is not None:
                yield *header, sequence.decode("ascii"), text
            text = line[1:].strip()
            fields = text.split()
            if not fields:
                raise FastaError(f"{path}, line {line_no}: header without an id")
            rid = fields[0]
            hashes.append(hash(rid))
            header, sequence = (rid, line_no), bytearray()
            continue
        if header is None:
            raise FastaError(
                f"{path}, line {line_no}: text before the first '>' header; not a FASTA file?"
            )
        line = "".join(line.split()).upper()
        bad = line.translate(_VALID)
        if bad:
            shown = ", ".join(repr(c) for c in sorted(set(bad))[:5])
            raise FastaError(
                f"{path}, line {line_no}: characters that are not nucleotides ({shown}) "
                f"in record '{header[0]}'"
            )
        sequence += line.replace("U", "T").encode("ascii")  # only the letters checked above remain
    if header is not None:
        yield *header, sequence.decode("ascii"), text
    ordered = np.sort(np.frombuffer(hashes, dtype=np.int64))
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(twice):  # maybe a duplicate id: the file's headers are read again to name it
        _refuse_duplicates(path, set(twice.tolist()))


def _refuse_duplicates(path: Path, suspects: set[int]) -> None:
    """The first id seen twice, by line, among the ids whose hash is in `suspects`."""
    first: dict[str, int] = {}
    for line_no, line in enumerate(_lines(path, _is_gzip(path)), start=1):
        fields = line.strip()[1:].split() if line.lstrip().startswith(">") else []
        if not fields or hash(fields[0]) not in suspects:
            continue
        rid = fields[0]
        if rid in first:
            raise FastaError(f"{path}, line {line_no}: duplicate id '{rid}' (first at line {first[rid]})")
        first[rid] = line_no


def write_fasta(path: str | Path, records: list[Record], rna: bool = False, width: int = 60) -> None:
    """Write records, wrapped at `width`; with `rna`, T is written as U."""
    with open(path, "w") as out:
        for rec in records:
            seq = rec.sequence.replace("T", "U") if rna else rec.sequence
            out.write(f">{rec.id}\n")
            for i in range(0, len(seq), width):
                out.write(seq[i : i + width] + "\n")
