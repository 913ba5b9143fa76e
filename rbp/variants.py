"""Variant effects: how a single-nucleotide change moves a trained model's binding score.

A variant is a base changed at a 1-based position of a sequence: a row of a TSV over the sequences
of a FASTA file, or a record of a VCF over a reference FASTA whose record names are its chromosomes.
For each variant and model (`effects`):

- `ref_probability`, `alt_probability`: the best probability among the windows of the model's
  training length that cover the variant (every start, stride 1), with the reference base and with
  the alternative one. A sequence no longer than the window is one window, itself, as `rbp predict`
  scores it. `ref_window`, `alt_window`: the 1-based start of each best window.
- `delta` = alt - ref, and `delta_logodds` = logit(alt) - logit(ref), the log-odds of the model's
  (the fold ensemble's) probability.
- `ref_call`, `alt_call` at the model's threshold (chosen on validation) and `site`: `gained`
  (called with the alternative base only), `lost`, `kept` or `none`.
- `window_delta_logodds`: the change the variant makes in the reference's best window itself, and
  `percentile`: where its size stands among every other single-nucleotide change in that window
  (3 per position; 4 where the window's base is unknown). 100: no other change in the window is as
  large; about 50: a typical one. Variants rank on it without a cut.

Only the windows that cover a variant are scored, so a variant costs the same on a 100-nt sequence
and on a chromosome: about 2 x window (both alleles' windows; a CNN scores them in one pass over
the 2 x window - 1 nt that they span) plus 3 x window (every change in the reference's best window)
windows. Variants sharing a position (in one block of 256) share their reference windows.
No MLflow here; `rbp.tracking.log_variants_run` logs a result.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rbp.errors import RbpError

BASES = "ACGT"
COLUMNS = ("sequence_id", "position", "ref", "alt")  # a variants TSV's columns; `name` and others are optional
VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
SITE_CHANGES = ("gained", "lost", "kept", "none")
RESULT_COLUMNS = ("model", "ref_probability", "alt_probability", "delta", "delta_logodds", "ref_call", "alt_call",
                  "site", "threshold", "window_delta_logodds", "percentile", "ref_window", "alt_window")
CHUNK = 256  # variants scored together: memory stays flat in their number
EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] before their log-odds are taken


@dataclass(frozen=True)
class Variant:
    sequence_id: str
    position: int  # 1-based
    ref: str  # one base, upper-case DNA (U as T)
    alt: str
    name: str
    line: int  # in its file
    extra: tuple = ()  # the file's other columns, (name, value) pairs, carried into the results
    rna: bool = False  # written with U: the results show U too

    def shown(self, base: str) -> str:
        return base.replace("T", "U") if self.rna else base


@dataclass
class VariantSet:
    """Variants checked against their sequences, and how to fetch the sequence around each."""

    variants: list[Variant]
    path: Path
    reference: Path
    fetch: Callable[[str, int, int], str]  # sequence id, 0-based start, end -> upper-case DNA
    lengths: dict[str, int]
    skipped: list[dict] = field(default_factory=list)  # VCF records that are no single-nucleotide change

    def loci(self, margin: int) -> list[tuple[str, int, int]]:
        """Per variant: the sequence within `margin` nt of it (clipped to the sequence), the variant's
        0-based offset in it, and where it starts in the sequence (0-based)."""
        out = []
        for v in self.variants:
            at = v.position - 1
            begin, end = max(0, at - margin + 1), min(self.lengths[v.sequence_id], at + margin)
            out.append((self.fetch(v.sequence_id, begin, end), at - begin, begin))
        return out


def _base(value: str) -> str:
    return value.strip().upper().replace("U", "T")


def is_vcf(path: str | Path) -> bool:
    return str(path).lower().endswith(VCF_SUFFIXES)


def read_variants(path: str | Path, reference: str | Path) -> VariantSet:
    """The variants of a TSV (over the sequences of the FASTA `reference`) or of a VCF (over a
    reference FASTA whose record names are its chromosomes), each checked against its sequence."""
    path, reference = Path(path), Path(reference)
    for given, what in ((path, "variants"), (reference, "fasta")):
        if not given.is_file():
            raise RbpError(f"{given}: file not found (the {what} file)")
    return read_vcf(path, reference) if is_vcf(path) else read_variant_table(path, reference)


def _check(v: Variant, sequence: str | None, length: int, where: str, reference: Path) -> None:
    """Refuse a variant that is not one base for another on a position of its sequence."""
    if sequence is None:
        raise RbpError(f"{where}: sequence '{v.sequence_id}' is not a record of {reference}")
    if not 1 <= v.position <= length:
        raise RbpError(f"{where}: position {v.position} lies outside '{v.sequence_id}' (1 to {length})")
    if v.alt == v.ref:
        raise RbpError(f"{where}: alt {v.alt} equals ref: not a change")
    if sequence != v.ref:
        raise RbpError(f"{where}: ref is {v.ref}, but '{v.sequence_id}' of {reference} has {sequence or '?'} at "
                       f"position {v.position} (1-based); are the coordinates 0-based, or the wrong sequence?")


def _single(ref: str, alt: str) -> str | None:
    """Why (ref, alt) is no single-nucleotide change in A, C, G, T, or None when it is one."""
    if len(ref) != 1 or len(alt) != 1:
        return f"ref {ref!r} and alt {alt!r}: only single-nucleotide variants are scored (one base each)"
    for name, base in (("ref", ref), ("alt", alt)):
        if base not in BASES:
            return f"{name} {base!r} is not one of A, C, G, U (T)"
    return None


def read_variant_table(path: Path, reference: Path) -> VariantSet:
    """A tab-separated table (plain or gzipped UTF-8) with a header naming at least sequence_id,
    position (1-based), ref and alt; `name` names a variant (default `<sequence_id>:<position><ref>><alt>`);
    other columns are carried into the results. Lines starting with `#` after the header, and empty
    ones, are skipped; quotes are letters like any other."""
    import gzip

    from rbp.fasta import read_fasta

    sequences = {r.id: r.sequence for r in read_fasta(reference, ambiguous="keep").records}
    with open(path, "rb") as probe:
        opener = gzip.open if probe.read(2) == b"\x1f\x8b" else open
    try:
        # a spreadsheet's byte-order mark is no column; a quote does not start a field
        with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
            variants = _variant_rows(path, reference, sequences,
                                     csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as exc:
        raise RbpError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the table as UTF-8, "
                       "tab-separated") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise RbpError(f"{path}: a damaged gzip file ({exc})") from None
    return VariantSet(variants, path, reference, lambda sid, begin, end: sequences[sid][begin:end],
                      {sid: len(sequences[sid]) for sid in {v.sequence_id for v in variants}})


def _header(path: Path, row: list[str], line_no: int) -> list[str]:
    header = [c.strip().lstrip("#").strip() for c in row]
    where = f"{path}, line {line_no}"
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise RbpError(f"{where}: the header names {', '.join(header)}; a variants table needs the columns "
                       f"{', '.join(COLUMNS)} (tab-separated; name and others optional)")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise RbpError(f"{where}: the header names {', '.join(twice)} twice")
    taken = sorted(set(header) & set(RESULT_COLUMNS))
    if taken:
        raise RbpError(f"{where}: the column {', '.join(taken)} would be overwritten by the results; rename it")
    return header


def _variant_rows(path: Path, reference: Path, sequences: dict[str, str], rows) -> list[Variant]:
    variants, seen, names = [], {}, {}
    header, header_line = None, 0
    for line_no, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if header is None:
            header, header_line = _header(path, row, line_no), line_no
            continue
        if row[0].startswith("#"):
            continue
        where = f"{path}, line {line_no}"
        if len(row) != len(header):
            raise RbpError(f"{where}: {len(row)} tab-separated fields, the header (line {header_line}) has "
                           f"{len(header)}")
        fields = dict(zip(header, (c.strip() for c in row), strict=True))
        try:
            position = int(fields["position"])
        except ValueError:
            raise RbpError(f"{where}: position {fields['position']!r} is not a whole number (1-based)") from None
        ref, alt = _base(fields["ref"]), _base(fields["alt"])
        if (why := _single(ref, alt)) is not None:
            raise RbpError(f"{where}: {why}")
        sid = fields["sequence_id"]
        name = fields.get("name") or f"{sid}:{position}{ref}>{alt}"
        extra = tuple((k, v) for k, v in fields.items() if k not in (*COLUMNS, "name"))
        v = Variant(sid, position, ref, alt, name, line_no, extra, "U" in (fields["ref"] + fields["alt"]).upper())
        sequence = sequences.get(sid)
        _check(v, None if sequence is None else sequence[position - 1:position],
               len(sequence) if sequence is not None else 0, where, reference)
        key = (sid, position, alt)
        if key in seen:
            raise RbpError(f"{where}: the same variant as line {seen[key]} ({sid} {position} {ref}>{alt})")
        if name in names:
            raise RbpError(f"{where}: the name '{name}' is given to two variants (line {names[name]} too)")
        seen[key] = names[name] = line_no
        variants.append(v)
    if header is None:
        raise RbpError(f"{path}: empty; give a header ({', '.join(COLUMNS)}) and one variant per line")
    if not variants:
        raise RbpError(f"{path}: no variants below the header")
    return variants


def read_vcf(path: Path, reference: Path) -> VariantSet:
    """A VCF's single-nucleotide variants (pysam), each checked against the reference FASTA (read
    through its samtools index, made beside a plain file when missing: a genome is never read whole).
    A record of several ALT alleles gives one variant each; indels, symbolic and `*` alleles are
    skipped and listed."""
    import pysam

    pysam.set_verbosity(0)  # htslib's own lines on stderr; the errors below say it once, naming the file
    try:
        fasta = pysam.FastaFile(str(reference))
    except (OSError, ValueError) as exc:
        raise RbpError(f"{reference}: cannot be read as an indexed reference FASTA ({exc}); give a plain FASTA "
                       "in a folder you can write to (its index, .fai, is made beside it) or one compressed with "
                       "bgzip and indexed with samtools faidx") from None
    lengths = dict(zip(fasta.references, fasta.lengths, strict=True))
    variants, skipped, seen, names = [], [], {}, set()
    try:
        with pysam.VariantFile(str(path)) as vcf:
            header_lines = _vcf_header_lines(path)
            for i, record in enumerate(vcf, start=1):
                line_no = header_lines + i if header_lines is not None else None
                where = (f"{path}, line {line_no}" if line_no else f"{path}, record {i}") + \
                    f" ({record.chrom}:{record.pos})"
                ref = _base(record.ref or "")
                for alt in record.alts or (".",):
                    why = _single(ref, _base(alt))
                    if why is not None:
                        skipped.append({"chrom": record.chrom, "pos": record.pos, "ref": record.ref, "alt": alt,
                                        "line": line_no, "reason": why})
                        continue
                    alt = _base(alt)
                    spelled = f"{record.chrom}:{record.pos}{ref}>{alt}"  # unique: a variant given twice is refused
                    alone = record.id and len(record.alts) == 1 and record.id not in names
                    name = record.id if alone else f"{record.id}:{spelled}" if record.id else spelled
                    v = Variant(record.chrom, record.pos, ref, alt, name, line_no or 0)
                    if record.chrom not in lengths:
                        shown = ", ".join(list(lengths)[:5]) + (", …" if len(lengths) > 5 else "")
                        raise RbpError(f"{where}: chromosome '{record.chrom}' is not a record of {reference} "
                                       f"(it holds {shown})")
                    base = fasta.fetch(record.chrom, record.pos - 1, record.pos).upper().replace("U", "T") \
                        if 1 <= record.pos <= lengths[record.chrom] else ""
                    _check(v, base, lengths[record.chrom], where, reference)
                    key = (v.sequence_id, v.position, alt)
                    if key in seen:
                        raise RbpError(f"{where}: the same variant as {seen[key]}")
                    seen[key] = f"line {line_no}" if line_no else f"record {i}"
                    names.add(v.name)
                    variants.append(v)
    except NotImplementedError:  # htslib reads gzip only in bgzip's blocks
        raise RbpError(f"{path}: compressed with gzip, not bgzip; a compressed VCF must be bgzip's (as bcftools "
                       "and tabix write it): decompress it, or recompress it with bgzip") from None
    except (OSError, ValueError) as exc:
        raise RbpError(f"{path}: not a readable VCF ({exc})") from None
    if not variants:
        why = f" ({len(skipped)} records, none a single-nucleotide change)" if skipped else ""
        raise RbpError(f"{path}: no single-nucleotide variant to score{why}")
    return VariantSet(variants, path, reference,
                      lambda chrom, begin, end: fasta.fetch(chrom, begin, end).upper().replace("U", "T"),
                      {chrom: lengths[chrom] for chrom in {v.sequence_id for v in variants}}, skipped)


def _vcf_header_lines(path: Path) -> int | None:
    """How many header lines (`#`) a text VCF, plain or gzipped, starts with; None for BCF."""
    import gzip

    with open(path, "rb") as probe:
        magic = probe.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    count = 0
    try:
        with opener(path, "rt", errors="replace") as handle:
            for line in handle:
                if not line.startswith("#"):
                    break
                count += 1
    except (OSError, EOFError):
        return None
    return None if str(path).lower().endswith(".bcf") else count


# ---------------------------------------------------------------------------------------- scoring
def logodds(probability) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=float), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def covering(region: str, at: int, window: int) -> tuple[str, int, int]:
    """The part of `region` that the windows covering position `at` span (every start, stride 1),
    the variant's offset in it and where it starts in `region`. A region no longer than the window
    is one window, itself."""
    if len(region) <= window:
        return region, at, 0
    first, last = max(0, at - window + 1), min(at, len(region) - window)
    return region[first:last + window], at - first, first


def every_change(predictor, windows: list[str]) -> np.ndarray:
    """(n, length, 4): how each single-nucleotide change (A, C, G, T at each position) moves each
    window's log-odds; the window's own base gives 0. Windows of one length."""
    import torch
    from scipy.special import expit

    n, length = len(windows), len(windows[0])
    own = np.array([[b == w[p] for p in range(length) for b in BASES] for w in windows]).reshape(n, length, 4)
    fast = getattr(predictor.family, "change_logits", None)
    if fast is not None:  # a network whose changes can be read in one pass (a one-layer CNN)
        parts = []
        for begin in range(0, n, 32):  # (32, length, kernel, filters) at a time
            with torch.inference_mode():
                each = [fast(m, windows[begin:begin + 32]) for m in predictor.models]
            if any(e is None for e in each):
                break
            changed = logodds(np.mean([expit(logits.astype(np.float64)) for logits, _ in each], axis=0))
            itself = logodds(np.mean([expit(mine.astype(np.float64)) for _, mine in each], axis=0))
            parts.append(np.where(own[begin:begin + 32], 0.0, changed - itself[:, None, None]))
        else:
            return np.concatenate(parts)
    mutants = [w[:p] + b + w[p + 1:] for w in windows for p in range(length) for b in BASES if b != w[p]]
    scores = logodds(predictor.probabilities(mutants + windows))
    deltas = np.zeros((n, length, 4))
    # a window's unknown base (N) is no base of A, C, G, T: all four are changes from it
    deltas[~own] = scores[:len(mutants)] - np.repeat(scores[len(mutants):], (~own).reshape(n, -1).sum(axis=1))
    return deltas


def by_length(texts: Iterable[str]) -> list[list[str]]:
    """The distinct texts, grouped by length (each group in the order given): a group is one batch."""
    groups: dict[int, list[str]] = {}
    for text in dict.fromkeys(texts):
        groups.setdefault(len(text), []).append(text)
    return list(groups.values())


def percentile_of(value: float, others: np.ndarray) -> float:
    """Where |value| stands among |others| (0 to 100; ties count half, so equal sizes give 50)."""
    size, others = abs(value), np.abs(others)
    return float(100.0 * ((others < size).sum() + 0.5 * (others == size).sum()) / len(others))


def _scan_best(predictor, contexts: list[str]) -> dict[str, tuple[int, float]]:
    """Per distinct context: the 0-based start (in it) and probability of its best window. A family
    that scans (`windows_logits`: the CNN) scores every window of contexts of one length in one
    batched pass; the others score the windows one by one, in batches."""
    import torch
    from scipy.special import expit

    distinct = list(dict.fromkeys(contexts))
    best: dict[str, tuple[int, float]] = {}
    scanner = getattr(predictor.family, "windows_logits", None)
    if scanner is not None:
        for group in by_length(distinct):
            for begin in range(0, len(group), CHUNK):
                part = group[begin:begin + CHUNK]
                with torch.inference_mode():
                    logits = [scanner(m, part, predictor.window) for m in predictor.models]
                if any(each is None for each in logits):
                    break
                scores = np.mean([expit(each.astype(np.float64)) for each in logits], axis=0)
                best.update(zip(part, zip(scores.argmax(axis=1).tolist(), scores.max(axis=1).tolist(),
                                          strict=True), strict=True))
    rest = [ctx for ctx in distinct if ctx not in best]
    best.update((ctx, (int(np.argmax(scores)), float(scores.max())))
                for ctx, (_, scores) in zip(rest, predictor.scans(rest, 1), strict=True))
    return best


def effects(predictor, variants: list[Variant], loci: list[tuple[str, int, int]], threshold: float | None = None,
            progress: bool = False) -> pd.DataFrame:
    """One row per variant: its effect on `predictor` (a FoldEnsemble), as the module's docstring
    says. `loci`: `VariantSet.loci` with a margin of at least the model's window."""
    from tqdm.auto import tqdm

    cut = predictor.threshold if threshold is None else float(threshold)
    window = predictor.window
    rows = []
    for begin in tqdm(range(0, len(variants), CHUNK), desc=f"variants ({predictor.label})", unit="chunk",
                      disable=not progress):
        part, places = variants[begin:begin + CHUNK], loci[begin:begin + CHUNK]
        spans = [covering(region, at, window) for region, at, _ in places]
        alts = [ctx[:off] + v.alt + ctx[off + 1:] for v, (ctx, off, _) in zip(part, spans, strict=True)]
        ref_best = _scan_best(predictor, [ctx for ctx, _, _ in spans])
        alt_best = _scan_best(predictor, alts)
        # every change in each reference best window (variants at one position share it)
        best_windows = [ctx[ref_best[ctx][0]:ref_best[ctx][0] + window] for ctx, _, _ in spans]
        changes = {}
        for same in by_length(best_windows):
            changes.update(zip(same, every_change(predictor, same), strict=True))
        for v, (ctx, off, first), alt_ctx, (_, _, region_start), w in zip(part, spans, alts, places, best_windows,
                                                                           strict=True):
            r_start, r_p = ref_best[ctx]
            a_start, a_p = alt_best[alt_ctx]
            deltas = changes[w]
            here = off - r_start  # the variant's position in the reference's best window
            changed = np.array([[b != w[p] for b in BASES] for p in range(len(w))])
            in_window = float(deltas[here, BASES.index(v.alt)])
            changed[here, BASES.index(v.alt)] = False  # the variant against every other change
            others = deltas[changed]
            offset = region_start + first + 1  # 1-based start of the context in the sequence
            rows.append({
                "name": v.name, "sequence_id": v.sequence_id, "position": v.position, "ref": v.shown(v.ref),
                "alt": v.shown(v.alt),
                **dict(v.extra), "model": predictor.label,
                "ref_probability": r_p, "alt_probability": a_p, "delta": a_p - r_p,
                "delta_logodds": float(logodds(a_p) - logodds(r_p)),
                "ref_call": int(r_p >= cut), "alt_call": int(a_p >= cut),
                "site": site_change(r_p >= cut, a_p >= cut), "threshold": cut,
                "window_delta_logodds": in_window, "percentile": percentile_of(in_window, others),
                "ref_window": offset + r_start, "alt_window": offset + a_start,
            })
    return pd.DataFrame(rows)


def site_change(ref_call: bool, alt_call: bool) -> str:
    return ("kept" if alt_call else "lost") if ref_call else ("gained" if alt_call else "none")


def view(predictor, variant: Variant, locus: tuple[str, int, int], flank: int = 12, label: str | None = None) -> dict:
    """What a variant's figure shows: both alleles' profiles (the best window covering each position)
    within a window's length either side of it, and each allele's attributions (in-silico mutagenesis
    of its best window covering the variant, base against the mean base) within `flank` nt of it.
    Positions are 1-based in the sequence. `locus` needs a margin of twice the window."""
    from rbp.attribution import contributions, ism
    from rbp.scan import profile

    region, at, region_start = locus
    window = predictor.window
    first, last = max(0, at - 2 * window + 1), min(len(region), at + 2 * window)
    shown = slice(max(0, at - window) - first, min(len(region), at + window + 1) - first)
    out = {"label": label or predictor.label, "variant": variant, "threshold": predictor.threshold,
           "positions": np.arange(first, last)[shown] + region_start + 1}

    def score(windows):
        return logodds(predictor.probabilities(windows))

    for allele in ("ref", "alt"):
        base = getattr(variant, allele)
        sequence = region[first:at] + base + region[at + 1:last]
        starts, scores = predictor.window_scores(sequence, 1)
        out[f"{allele}_profile"] = (np.full(len(sequence), scores[0]) if len(starts) == 1
                                    else profile(len(sequence), starts, window, scores))[shown]
        context, offset, begin = covering(region[:at] + base + region[at + 1:], at, window)
        best = int(np.argmax(predictor.window_scores(context, 1)[1]))
        best_window = context[best:best + window]
        here = offset - best
        attributions = contributions(ism(score, [best_window]), [best_window])[0]
        lo, hi = max(0, here - flank), min(len(best_window), here + flank + 1)
        out[f"{allele}_logo"] = (np.arange(lo, hi) - here + variant.position,
                                 best_window[lo:hi], attributions[lo:hi])
    return out


# ---------------------------------------------------------------------------------------- a results folder
@dataclass
class VariantsResult:
    out: Path
    table: pd.DataFrame
    summary: dict

    def __str__(self) -> str:
        s = self.summary
        counts = "; ".join(f"{label}: {c['gained']} gained, {c['lost']} lost" for label, c in s["sites"].items())
        text = (f"{s['variants']} variants scored by {len(s['models'])} model{'s' * (len(s['models']) > 1)} "
                f"({counts}) in {s['seconds']:.1f} s: {self.out}")
        if s.get("skipped"):
            text += f"\n{s['skipped']} VCF records are no single-nucleotide change: listed in skipped.tsv"
        return text


def score_variants(models: list, fasta: str | Path, variants: str | Path, out: str | Path | None = None,
                   threshold: float | None = None, figures: int = 5, device: str = "auto", progress: bool = True,
                   load=None) -> VariantsResult:
    """Score the variants of `variants` (a TSV or a VCF) on the sequences of `fasta` with each model and
    write, into a new folder (whole or not at all): `variants.tsv` (a row per variant and model, ranked
    by percentile within each model), `summary.json` (the models, the inputs' sha256, the counts) and
    `figures/<model>_<rank>_<variant>.png`, the `figures` top variants of each model (see
    `rbp.plots.variant_figure`)."""
    from rbp.apply import _safe, load_model, model_labels, new_out, output_folder
    from rbp.data import sha256_file

    start_time = time.perf_counter()
    load = load or load_model
    if threshold is not None and not 0 <= threshold <= 1:
        raise RbpError(f"threshold: must lie between 0 and 1, got {threshold}")
    if figures < 0:
        raise RbpError(f"figures: must be 0 or more, got {figures}")
    out = new_out(out, "variants")
    found = read_variants(variants, fasta)  # a bad file is refused before a model loads
    loaded = {}
    for model in models:  # keyed by where each came from: a model given twice scores once
        predictor, uri = load(model, device)
        loaded.setdefault(uri if uri != "(in memory)" else f"(in memory {len(loaded) + 1})", (predictor, uri))
    labels = model_labels({given: p for given, (p, _) in loaded.items()})
    margin = 2 * max(p.window for p, _ in loaded.values())  # the figures show a window either side
    loci = found.loci(margin)
    index = {v.name: i for i, v in enumerate(found.variants)}
    with output_folder(out) as partial:
        tables, sites = [], {}
        for given, (predictor, _) in loaded.items():
            table = effects(predictor, found.variants, loci, threshold, progress).assign(model=labels[given])
            table = table.sort_values(["percentile", "delta_logodds"], key=lambda c: c.abs() if c.name ==
                                      "delta_logodds" else c, ascending=False, kind="stable")
            tables.append(table)
            sites[labels[given]] = {change: int((table.site == change).sum()) for change in SITE_CHANGES}
            for rank, row in enumerate(table.head(figures).to_dict("records"), start=1):
                import matplotlib.pyplot as plt

                from rbp import plots  # only with figures: logomaker need not be installed to score

                i = index[row["name"]]
                figure = plots.variant_figure(view(predictor, found.variants[i], loci[i], label=labels[given]), row)
                name = f"{_safe(labels[given])}_{rank:02d}_{_safe(row['name'])}.png"  # the model's ranking
                figure.savefig(partial / "figures" / name, dpi=120, bbox_inches="tight")
                plt.close(figure)
        table = pd.concat(tables, ignore_index=True)
        table.to_csv(partial / "variants.tsv", sep="\t", index=False, float_format="%.6g")
        if found.skipped:
            pd.DataFrame(found.skipped).to_csv(partial / "skipped.tsv", sep="\t", index=False)
        summary = {
            "models": {labels[given]: uri for given, (_, uri) in loaded.items()},
            "inputs": {role: {"path": str(p.resolve()), "sha256": sha256_file(p)}
                       for role, p in (("fasta", found.reference), ("variants", found.path))},
            "variants": len(found.variants), "skipped": len(found.skipped), "sites": sites,
            "thresholds": {labels[given]: p.threshold if threshold is None else float(threshold)
                           for given, (p, _) in loaded.items()},
            "windows": {labels[given]: p.window for given, (p, _) in loaded.items()},
            "datasets": {labels[given]: p.info.get("dataset") for given, (p, _) in loaded.items()},
            "figures": min(figures, len(found.variants)) * len(loaded),
            "seconds": round(time.perf_counter() - start_time, 2),
        }
        (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return VariantsResult(out, table, summary)


def experiment_of(summary: dict) -> str:
    """Where a variants run is logged: its models' data set when they share one, else `variants`."""
    datasets = set(summary["datasets"].values())
    return datasets.pop() if len(datasets) == 1 and None not in datasets else "variants"


def known_answer(table: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Per model and kind of variant (`kinds`: variant name -> kind, e.g. core / far): how many, how
    many lowered the score, the median change and how many sites were lost or gained."""
    frame = table.assign(kind=table.name.map(kinds)).dropna(subset=["kind"])
    models = {model: i for i, model in enumerate(dict.fromkeys(frame.model))}  # the models in the table's order
    return (frame.groupby(["model", "kind"], sort=False)
            .agg(variants=("name", "size"), lowered=("delta", lambda d: int((d < 0).sum())),
                 median_delta=("delta", "median"), lost=("site", lambda s: int((s == "lost").sum())),
                 gained=("site", lambda s: int((s == "gained").sum())))
            .reset_index()
            .sort_values(["model", "kind"], key=lambda c: c.map(models) if c.name == "model" else c,
                         ignore_index=True))

