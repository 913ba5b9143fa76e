"""Applying a trained model to a FASTA file: score sites, scan transcripts, call binding sites.

`apply_model(model, fasta)` reads a FASTA file (RNA or DNA, any case; IUPAC codes become unknown k-mers)
and writes, into a new folder (complete or not at all):

- `scores.tsv`: per sequence its length, windows, best window's probability, call, sites (and motif hits);
- `windows.tsv`: every window's start, end (0-based, half-open) and probability;
- `profile.bedgraph`: per nucleotide, the best probability of the windows covering it;
- `sites.bed` (BED6) and `sites.tsv`: the called sites: runs of positions whose profile reaches the
  threshold, each with its peak (best window) and summit (that window's centre);
- `figures/<id>.png`: the profile of the best-scoring sequences longer than a window;
- `summary.json`: the model, its threshold and window, the counts and the time.

A sequence of the training length or shorter is one window (scored as it is); a longer one is scanned
with windows of the training length every `stride` nt, the last one flush with its end. The windows of
many sequences are scored together in batches, a long sequence's a chunk at a time, so memory does not
grow with a transcript's length beyond its profile.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from rbp.config import check_writable
from rbp.errors import RbpError
from rbp.fasta import AMBIGUOUS, AMBIGUOUS_POLICIES, read_fasta
from rbp.fold_ensemble import MANIFEST, FoldEnsemble
from rbp.motifs import motif_regex
from rbp.remembered import remembered_scores
from rbp.scan import Site, bed_lines, bedgraph_lines, call_sites, check_stride, motif_positions, profile, sites_table


@dataclass
class Scan:
    sequence_id: str
    length: int
    starts: np.ndarray
    scores: np.ndarray
    profile: np.ndarray  # per nucleotide, the best window covering it
    sites: list = field(default_factory=list)
    motif_starts: list[int] = field(default_factory=list)


@dataclass
class PredictResult:
    out: Path
    scores: pd.DataFrame
    sites: pd.DataFrame
    summary: dict
    scans: list[Scan]  # the best-scoring sequences longer than a window, drawn in figures/

    def __str__(self) -> str:
        s = self.summary
        if "models" in s:  # several models at once
            calls = ", ".join(f"{label} {n}" for label, n in s["sites"].items())
            return (f"{s['sequences']} sequences scored by {len(s['models'])} models (sites called: {calls}) "
                    f"in {s['seconds']:.1f} s: {self.out}")
        text = (f"{s['sequences']} sequences, {s['windows']} windows, {s['sites']} sites called "
                f"(threshold {s['threshold']:.3f}) in {s['seconds']:.1f} s: {self.out}")
        if s.get("skipped_ambiguous"):
            text += (f"\n{s['skipped_ambiguous']} sequences holding N or another ambiguity code were skipped, as the "
                     "model was trained (ambiguous: skip; listed in skipped_ambiguous.txt; --ambiguous keep scores "
                     "them)")
        if s.get("scored_ambiguous"):
            text += (f"\n{s['scored_ambiguous']} sequences hold N or another ambiguity code: scored with those "
                     "positions unknown (ambiguous: keep)")
        return text


def load_model(model, device: str = "auto") -> tuple[FoldEnsemble, str]:
    """A FoldEnsemble and where it came from: as given, or from a local folder (a predictor folder, or an
    MLflow model folder that holds one). A model URI or name is MLflow's: `rbp.tracking.load_model`
    resolves those and folders alike."""
    if isinstance(model, FoldEnsemble):
        return model, model.source or "(in memory)"
    folder = Path(str(model))
    if not folder.is_dir():
        raise RbpError(f"model {model}: not a model folder; a model URI or registered name is loaded through "
                       "MLflow (`rbp predict --model` and `rbp.tracking.load_model` take either)")
    nested = [path.parent for path in folder.rglob(MANIFEST)]
    predictor = FoldEnsemble.load(folder if (folder / MANIFEST).is_file() or not nested else nested[0], device)
    predictor.source = str(folder.resolve())
    return predictor, predictor.source


def input_fasta(predictors: dict, fasta: str | Path | None, folder: str | Path, seed: int = 42
                ) -> tuple[Path, dict[str, list[int]]]:
    """The FASTA to score, and the planted site starts per sequence when it is synthetic: `fasta`
    when given; otherwise, when every model (label -> FoldEnsemble) learned from the built-in synthetic
    set, a synthetic transcript with planted sites written into `folder`. Models of real data need a
    FASTA: planted Pumilio-like elements say nothing about them."""
    from rbp.config import resolve
    from rbp.synthetic import write_transcript

    if fasta:
        return resolve(fasta), {}
    real = [f"{label} ({p.info.get('dataset', 'unknown data')})" for label, p in predictors.items()
            if not p.info.get("synthetic")]
    if real:
        raise RbpError(f"predict.fasta: not given, and {', '.join(real)} learned from real data; the built-in "
                       "synthetic transcript would say nothing about "
                       f"{'them' if len(real) > 1 else 'it'}. Give a FASTA of sequences to score.")
    path = Path(folder) / "synthetic_transcript.fa"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, {f"synthetic_transcript_{seed}": write_transcript(path, seed=seed)}


def new_out(out: str | Path | None, kind: str = "predict") -> Path:
    """The results folder to write: `out`, which must not hold anything yet, or a new
    `outputs/<kind>-<time>`."""
    from rbp.config import resolve

    out = Path(out) if out else resolve("outputs") / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RbpError(f"{out}: already exists; give another --out or remove it")
    return out


def scan_sequence(predictor: FoldEnsemble, sequence_id: str, sequence: str, stride: int, threshold: float,
                  motif: str | None = None) -> Scan:
    starts, scores = predictor.window_scores(sequence, stride)
    return scanned(predictor.window, sequence_id, sequence, starts, scores, threshold, motif)


def scanned(window: int, sequence_id: str, sequence: str, starts: np.ndarray, scores: np.ndarray,
            threshold: float, motif: str | None = None) -> Scan:
    """The profile and called sites of a sequence from its windows' scores."""
    length = len(sequence)
    if len(starts) == 1:  # one window, the whole sequence: a flat profile, one site or none
        score = float(scores[0])
        track = np.full(length, score)
        sites = [Site(0, length, score, min(window, length) // 2, 1)] if score >= threshold else []
    else:
        track = profile(length, starts, window, scores)
        sites = call_sites(length, starts, window, scores, threshold, track)
    hits = motif_positions(sequence, motif) if motif else []
    return Scan(sequence_id, length, starts, scores, track, sites, hits)


def ambiguous_policy(predictor: FoldEnsemble, given: str | None = None) -> str:
    """What happens to a sequence holding N or another ambiguity code: `given`, else the policy the
    model was trained under (`ambiguous` of its params: skip, keep or error), else keep."""
    if given is not None:
        if given not in AMBIGUOUS_POLICIES:
            raise RbpError(f"ambiguous: {given!r} is not one of {', '.join(AMBIGUOUS_POLICIES)}")
        return given
    return getattr(predictor.params, "ambiguous", None) or "keep"


def apply_policy(records: list, policy: str, fasta: str | Path) -> tuple[list, list[str]]:
    """The records to score under an ambiguity policy, and the ids it skipped; read once (with
    `keep`), the file is read again only to name the line `error` refuses."""
    ambiguous = [r.id for r in records if AMBIGUOUS.intersection(r.sequence)]
    if not ambiguous or policy == "keep":
        return records, []
    if policy == "error":
        read_fasta(fasta, ambiguous="error")  # raises, naming the file, line and record
    if len(ambiguous) == len(records):
        raise RbpError(f"{fasta}: every sequence holds N or another ambiguity code, and ambiguous is skip: "
                       "nothing to score (--ambiguous keep scores them, their unknown positions as such)")
    dropped = set(ambiguous)
    return [r for r in records if r.id not in dropped], ambiguous


def apply_model(model, fasta: str | Path, out: str | Path | None = None, stride: int = 1,
            threshold: float | None = None, motif: str | None = None, k: int | None = None,
            figures: int = 10, device: str = "auto", progress: bool = True, explain: bool = False,
            load=load_model, ambiguous: str | None = None) -> PredictResult:
    """Score `fasta` with `model` into the folder `out` (see the module's docstring). `load` turns
    `model` into a FoldEnsemble: `load_model` here (a FoldEnsemble or a local folder), or
    `rbp.tracking.load_model`, which also resolves model URIs and registered names. A sequence with N
    or another ambiguity code follows `ambiguous` (skip, keep or error), by default the model's own
    training policy; the summary counts those skipped and those scored."""
    start_time = time.perf_counter()
    if threshold is not None and not 0 <= threshold <= 1:
        raise RbpError(f"threshold: must lie between 0 and 1, got {threshold}")
    if motif:
        motif_regex(motif)  # an unknown letter is refused before any work
    out = new_out(out)
    records = read_fasta(fasta, ambiguous="keep").records  # a malformed file is refused before a model loads
    predictor, uri = load(model, device)
    predictor.with_k(k)
    policy = ambiguous_policy(predictor, ambiguous)
    records, skipped = apply_policy(records, policy, fasta)
    check_stride(predictor.window, stride)  # before any work
    short = [r for r in records if len(r.sequence) < predictor.k]
    if short:
        raise RbpError(f"{fasta}: record '{short[0].id}' has {len(short[0].sequence)} nt, fewer than the "
                       f"model's k = {predictor.k}: it has no k-mer to score")
    threshold = predictor.threshold if threshold is None else float(threshold)

    with output_folder(out) as partial:
        result = _write(predictor, uri, records, partial, stride, threshold, motif, figures, progress, explain)
        result.summary.update(fasta=str(Path(fasta).resolve()), ambiguous=policy, skipped_ambiguous=len(skipped),
                              scored_ambiguous=sum(1 for r in records if AMBIGUOUS.intersection(r.sequence)),
                              seconds=round(time.perf_counter() - start_time, 2))
        if skipped:
            (partial / "skipped_ambiguous.txt").write_text("".join(f"{rid}\n" for rid in skipped))
        (partial / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
    result.out = out
    return result


def model_labels(predictors: dict[str, FoldEnsemble]) -> dict[str, str]:
    """A column name per model: its data set (the protein), with the family (and DNABERT's pretrained or
    scratch) where one data set gives two models, or the name it was given where its data set is unknown."""
    names = {given: p.info.get("dataset") or given for given, p in predictors.items()}
    twice = {name for name in names.values() if list(names.values()).count(name) > 1}
    labels = {given: f"{name} {p.label}" + (f" ({p.info['init']})" if p.info.get("init") else "") if name in twice
              else name for (given, p), name in zip(predictors.items(), names.values(), strict=True)}
    if len(set(labels.values())) < len(labels):  # the same model given twice
        return {given: given for given in predictors}
    return labels


@contextmanager
def output_folder(out: Path):
    """A new results folder, whole or not at all: what is written into the yielded folder (a hidden
    `.<name>.partial-<pid>` beside `out`, with `figures/`) becomes `out` when the block ends, and is
    removed when it fails. Folders that killed runs left beside it go first; a folder that cannot be
    written, or a write that fails (a full disk), is one RbpError."""
    clean_partials(out)
    check_writable(out.parent, "--out")
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        (partial / "figures").mkdir(parents=True)
        yield partial
        if out.exists():
            out.rmdir()  # empty (checked before any work)
        os.replace(partial, out)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise RbpError(write_failure(out, exc)) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_failure(out: Path, exc: OSError) -> str:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return (f"{out}: the results could not be written: {exc.strerror or exc}{where}; nothing was left behind. "
            "Free some space, or give --out a folder you can write to")


def clean_partials(out: Path) -> None:
    """Remove what killed runs left beside `out`: `.<name>.partial-<pid>` folders whose process is gone."""
    if not out.parent.is_dir():
        return
    for stale in out.parent.glob(".*.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its process died (kill -9): nothing will finish it
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:  # another user's live process
            continue


def apply_models(models: list, fasta: str | Path, out: str | Path | None = None, stride: int = 1,
                 threshold: float | None = None, motif: str | None = None, k: int | None = None,
                 figures: int = 10, device: str = "auto", progress: bool = True, load=load_model,
                 ambiguous: str | None = None) -> PredictResult:
    """Score `fasta` with several models at once (one per protein, say): each model's usual results in
    `<out>/<label>/` (see `apply_model`), and at the top `scores.tsv` with a column per model (its best
    window's probability; `<label>_call` and `<label>_sites` beside), `sites.tsv` of every model's sites
    with a `model` column, and `figures/<id>.png`, a track per model along each of the `figures`
    best-scoring sequences longer than a window."""
    import matplotlib.pyplot as plt

    from rbp import plots

    start_time = time.perf_counter()
    if len(models) < 2:
        raise RbpError("apply_models: give two models or more (one model: apply_model)")
    out = new_out(out)
    if threshold is not None and not 0 <= threshold <= 1:
        raise RbpError(f"threshold: must lie between 0 and 1, got {threshold}")
    loaded = {}
    for model in models:  # every model loads (and is checked) before any work
        predictor, uri = load(model, device)
        loaded[str(model)] = (predictor.with_k(k), uri)
        check_stride(predictor.window, stride)
    labels = model_labels({given: predictor for given, (predictor, _) in loaded.items()})
    # An ensemble among them would run its members again on every window they scored: what they scored is
    # remembered then (it costs the fastest models time where nothing is scored twice: docs/benchmarks.md).
    ensemble = any(hasattr(predictor.family, "parts") for predictor, _ in loaded.values())
    with output_folder(out) as partial, remembered_scores() if ensemble else nullcontext():
        results = {}
        for given, (predictor, _) in loaded.items():
            results[labels[given]] = apply_model(predictor, fasta, partial / _safe(labels[given]), stride, threshold,
                                                 motif, k, 0, device, progress, ambiguous=ambiguous)
        wide, sites = None, []
        for label, result in results.items():
            part = result.scores[["sequence_id", "length", "probability", "call", "sites"]].rename(
                columns={"probability": label, "call": f"{label}_call", "sites": f"{label}_sites"})
            wide = part if wide is None else wide.merge(part, on=["sequence_id", "length"], how="outer", sort=False,
                                                        validate="1:1")  # models may skip different sequences
            sites.append(result.sites.assign(model=label))
        every = read_fasta(fasta, ambiguous="keep").records  # once, for the file's order and the figures
        order = {r.id: i for i, r in enumerate(every)}
        wide = wide.sort_values("sequence_id", key=lambda ids: ids.map(order), ignore_index=True)  # the file's order
        wide.to_csv(partial / "scores.tsv", sep="\t", index=False)
        pd.concat(sites, ignore_index=True).to_csv(partial / "sites.tsv", sep="\t", index=False)
        window = min(p.window for p, _ in loaded.values())
        long = wide[wide.length > window]
        top = long.assign(best=long[list(results)].max(axis=1)).nlargest(figures, "best") if figures else long[:0]
        drawn = set(top.sequence_id)
        records = {r.id: r.sequence for r in every if r.id in drawn}
        for sequence_id in top.sequence_id:
            tracks = {}
            for given, (predictor, _) in loaded.items():
                cut = predictor.threshold if threshold is None else float(threshold)
                scan = scan_sequence(predictor, sequence_id, records[sequence_id], stride, cut)
                tracks[labels[given]] = (scan.profile, cut, scan.sites)
            figure = plots.tracks_figure(sequence_id, len(records[sequence_id]), tracks)
            figure.savefig(partial / "figures" / f"{_safe(sequence_id)}.png", dpi=120, bbox_inches="tight")
            plt.close(figure)
        summary = {"models": {label: uri for given, (_, uri) in loaded.items() for label in [labels[given]]},
                   "fasta": str(Path(fasta).resolve()), "stride": stride, "sequences": len(wide),
                   "sites": {label: len(result.sites) for label, result in results.items()},
                   "positive_calls": {label: int(result.scores.call.sum()) for label, result in results.items()},
                   "figures": len(top), "seconds": round(time.perf_counter() - start_time, 2)}
        (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return PredictResult(out, wide, pd.concat(sites, ignore_index=True), summary, [])


def explain_sites(predictor: FoldEnsemble, sequence: str, sites) -> np.ndarray:
    """A per-nucleotide attribution track of a long sequence (NaN where nothing was explained): for
    each called site, in-silico mutagenesis of the window of the training length centred on its
    summit, by the ensemble (the mean of its fold models)."""
    from rbp.attribution import contributions, ism

    track = np.full(len(sequence), np.nan)
    if not sites or len(sequence) < predictor.window:
        return track
    starts = sorted({min(max(site.summit - predictor.window // 2, 0), len(sequence) - predictor.window)
                     for site in sites})
    windows = [sequence[s:s + predictor.window] for s in starts]
    scores = contributions(ism(lambda variants: predictor.probabilities(variants, logits=True), windows), windows)
    for start, row in zip(starts, scores, strict=True):
        track[start:start + predictor.window] = row
    return track


def _write(predictor, uri, records, folder: Path, stride, threshold, motif, figures, progress,
           explain: bool = False) -> PredictResult:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from rbp import plots

    rows, sites, best, n_windows = [], {}, [], 0
    with (folder / "windows.tsv").open("w") as windows, (folder / "profile.bedgraph").open("w") as graph:
        windows.write("sequence_id\tstart\tend\tprobability\n")
        graph.write(f'track type=bedGraph name="rbp {predictor.label}" description="best window probability"\n')
        scored = predictor.scans((record.sequence for record in records), stride)  # in batches
        bar = tqdm(records, desc="scoring", unit="seq", disable=not progress, mininterval=1.0)
        for i, (record, (starts, scores)) in enumerate(zip(bar, scored, strict=True)):
            scan = scanned(predictor.window, record.id, record.sequence, starts, scores, threshold, motif)
            span = min(predictor.window, scan.length)
            windows.writelines(f"{record.id}\t{s}\t{s + span}\t{p:.6g}\n"
                               for s, p in zip(starts.tolist(), scores.tolist(), strict=True))
            graph.writelines(line + "\n" for line in bedgraph_lines(record.id, scan.profile))
            n_windows += len(scan.starts)
            sites[record.id] = scan.sites
            top = float(scan.scores.max())
            rows.append({"sequence_id": record.id, "length": scan.length, "windows": len(scan.starts),
                         "probability": top, "call": int(top >= threshold), "sites": len(scan.sites),
                         **({f"{motif}_hits": len(scan.motif_starts)} if motif else {})})
            if scan.length > predictor.window and figures:
                heapq.heappush(best, (top, -i, scan))
                if len(best) > figures:
                    heapq.heappop(best)
    table = sites_table(sites)
    (folder / "sites.bed").write_text("".join(line + "\n" for line in bed_lines(table)))
    table.to_csv(folder / "sites.tsv", sep="\t", index=False)
    scores = pd.DataFrame(rows)
    scores.to_csv(folder / "scores.tsv", sep="\t", index=False)
    scans = [scan for _, _, scan in sorted(best, key=lambda item: (-item[0], -item[1]))]
    sequences = {record.id: record.sequence for record in records} if explain else {}
    for scan in scans:
        track = explain_sites(predictor, sequences[scan.sequence_id], scan.sites) if explain else None
        figure = plots.profile_figure(scan.sequence_id, scan.length, scan.starts, predictor.window, scan.scores,
                                      threshold, scan.sites, scan.motif_starts, motif, predictor.label, track)
        figure.savefig(folder / "figures" / f"{_safe(scan.sequence_id)}.png", dpi=120, bbox_inches="tight")
        plt.close(figure)
    summary = {"model": uri, "family": predictor.family.name, "k": predictor.k, "window": predictor.window,
               "stride": stride, "threshold": threshold, "model_threshold": predictor.threshold,
               "sequences": len(records), "windows": n_windows, "sites": len(table),
               "positive_calls": int(scores.call.sum()) if len(scores) else 0, "motif": motif,
               "explained": bool(explain)}
    return PredictResult(folder, scores, table, summary, scans)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "sequence"
