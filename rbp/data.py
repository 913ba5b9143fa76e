"""Labelled data sets, cross-validation folds, and the folds folder every model reads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from rbp import __version__
from rbp.errors import RbpError
from rbp.fasta import read_fasta
from rbp.kmers import kmer_strings
from rbp.overlap import overlap_groups
from rbp.synthetic import write_synthetic

SPLITS = ("train", "dev", "test")


class DataError(RbpError):
    """Data that cannot make the folds asked for (too few sequences, one class, too short)."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class LabelledSet:
    table: pd.DataFrame  # columns id, sequence, label (1 positive, 0 negative); fixed_test with a test set
    sources: dict  # per input file (positives, negatives | labelled; test_set): path, sha256, records, ...

    @property
    def data_sha256(self) -> str:
        """One hash for the input files: it tags every run trained on them."""
        both = "\n".join(source["sha256"] for source in self.sources.values())
        return hashlib.sha256(both.encode()).hexdigest()

    @property
    def fixed_test(self) -> np.ndarray | None:
        """Which rows come from the fixed test set (None without one)."""
        return self.table["fixed_test"].to_numpy() if "fixed_test" in self.table else None


def _read_part(name: str, path: str | Path, label: int | None, label_key: str, ambiguous: str,
               k: int | None, max_length: int | None) -> tuple[pd.DataFrame, dict]:
    """One input file as rows (id, sequence, label): all of one class (`label`) or, with label None,
    each record's class read from its header under `label_key`."""
    fasta = read_fasta(path, ambiguous=ambiguous, label_key=None if label is not None else label_key)
    for rec in fasta.records:
        if max_length is not None and len(rec.sequence) > max_length:
            raise DataError(f"{path}: record '{rec.id}' has {len(rec.sequence)} nt, more than "
                            f"max_sequence_length = {max_length}; cut it to its binding region, or raise "
                            "max_sequence_length if the model can take it")
        if k is not None and len(rec.sequence) < k:
            raise DataError(f"{path}: record '{rec.id}' has {len(rec.sequence)} nt, shorter than k = {k}")
    labels = np.frombuffer(fasta.labels, dtype=np.int8).astype(int) if label is None else label
    frame = pd.DataFrame({"id": [r.id for r in fasta.records], "sequence": [r.sequence for r in fasta.records],
                          "label": labels})
    source = {"path": str(Path(path).resolve()), "sha256": sha256_file(path), "records": len(fasta.records),
              "skipped_ambiguous": len(fasta.skipped)}
    if label is None:
        counts = {c: int((frame.label == c).sum()) for c in (1, 0)}
        source.update(positives=counts[1], negatives=counts[0], label_key=label_key)
        if min(counts.values()) == 0:
            only = 1 if counts[1] else 0
            raise DataError(f"{source['path']}: every usable record is labelled {label_key}:{only}; a labelled "
                            f"FASTA needs both classes ({label_key}:1 bound, {label_key}:0 not)")
    return frame, source


def load_labelled(positives: str | Path | None = None, negatives: str | Path | None = None,
                  ambiguous: str = "skip", k: int | None = None, max_length: int | None = None, *,
                  labelled: str | Path | None = None, test_set: str | Path | None = None,
                  label_key: str = "class") -> LabelledSet:
    """The sequences to train on, ids unique across every file: positives (label 1) and negatives
    (label 0) from two FASTA files, or both classes from one `labelled` FASTA (the class in each
    header, `class:1`). A `test_set` (a labelled FASTA) is a fixed test set: its rows are marked
    `fixed_test`, to be scored, never trained on."""
    parts = [("labelled", labelled, None)] if labelled is not None else [
        ("positives", positives, 1), ("negatives", negatives, 0)]
    if test_set is not None:
        parts.append(("test_set", test_set, None))
    frames, sources, origin = [], {}, {}
    for name, path, label in parts:
        frame, sources[name] = _read_part(name, path, label, label_key, ambiguous, k, max_length)
        for rid in frame.id:
            if rid in origin:
                raise DataError(f"id '{rid}' stands in both {origin[rid]} and {path}"
                                + (": a test sequence may not be trained on" if name == "test_set" else ""))
            origin[rid] = path
        if name == "test_set" and min(sources[name]["positives"], sources[name]["negatives"]) < 2:
            raise DataError(f"{sources[name]['path']}: the test set holds {sources[name]['positives']} positives and "
                            f"{sources[name]['negatives']} negatives; each class needs at least 2 to be scored")
        if test_set is not None:
            frame["fixed_test"] = name == "test_set"
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    training = table[~table.fixed_test] if test_set is not None else table
    for name, label in (("positives", 1), ("negatives", 0)):
        if not (training.label == label).any():
            where = sources["labelled"]["path"] if labelled is not None else sources[name]["path"]
            raise DataError(f"{where}: no usable {name} left; both classes are needed")
    return LabelledSet(table, sources)


def center_window(sequences, length: int | None) -> list[str]:
    """The centred `length` nt of each sequence (shorter ones unchanged); None keeps them whole."""
    if length is None:
        return list(sequences)
    out = []
    for seq in sequences:
        start = max(0, (len(seq) - length) // 2)
        out.append(seq[start:start + length])
    return out


def apply_window(table: pd.DataFrame, length: int | None, short_sequences: str = "keep") -> pd.DataFrame:
    """Cut the centred window of `length` nt from each sequence, before tokenisation.

    Sequences shorter than the window are kept whole (`keep`) or dropped (`drop`). Cutting is
    idempotent, so applying the same window twice changes nothing.
    """
    if length is None:
        return table
    if short_sequences == "drop":
        table = table[table.sequence.str.len() >= length]
    return table.assign(sequence=center_window(table.sequence, length)).reset_index(drop=True)


def _split_off(positions: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, fraction: float,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, part): a stratified share `fraction` of `positions` split off; with `groups`, whole groups
    (`StratifiedGroupKFold`'s first split of about 1 / fraction), so the share is near `fraction`.
    Raises ValueError when the classes cannot be on both sides."""
    if groups is None:
        rest, part = train_test_split(positions, test_size=fraction, stratify=labels[positions], random_state=seed)
        return rest, part
    splitter = StratifiedGroupKFold(max(2, round(1 / fraction)), shuffle=True, random_state=seed)
    rest, part = next(splitter.split(positions, labels[positions], groups[positions]))
    return positions[rest], positions[part]


def _check_classes(rows: pd.DataFrame, labels: np.ndarray) -> None:
    """Grouped splits cannot promise both classes everywhere: say which split lacks one."""
    for (fold, split), part in rows.groupby(["fold", "split"]):
        if len(np.unique(labels[part["index"].to_numpy()])) < 2:
            raise DataError(f"fold {fold}: its {split} split holds only one class once overlapping sequences are "
                            "kept together (group_overlap); give more sequences, fewer folds, or set group_overlap "
                            "null")


def make_folds(labels, folds: int, seed: int, val_fraction: float,
               test_fraction: float = 0.2, fixed_test=None, groups=None) -> pd.DataFrame:
    """Split positions 0..n-1 into stratified folds; returns columns index, fold, split.

    Every position is `test` in exactly one fold; in every other fold it is `train` or `dev`, the
    stratified validation split of that fold's training part. `folds=0` makes one stratified
    train/test split of `test_fraction` (fold 1). With `fixed_test` (a mask of the positions of a
    fixed test set) there is one fold: those positions are its test part, and the rest is split
    into `train` and a stratified `dev` of `val_fraction`. With `groups` (a group number per
    position, `rbp.overlap.overlap_groups`), positions of one group always share a split; groups of
    one position each split exactly as without them.
    """
    labels = np.asarray(labels)
    groups = None if groups is None else np.asarray(groups)
    if groups is not None and len(np.unique(groups)) == len(labels):
        groups = None  # nothing overlaps: the plain stratified splits
    if fixed_test is not None:
        rows = _fixed_test_split(labels, np.asarray(fixed_test, dtype=bool), seed, val_fraction, groups)
        if groups is not None:
            _check_classes(rows, labels)
        return rows
    counts = {int(c): int((labels == c).sum()) for c in (0, 1)}
    if min(counts.values()) == 0:
        raise DataError("only one class present; folds need positives and negatives")
    need = max(folds, 2)
    if min(counts.values()) < need:
        raise DataError(
            f"too few sequences for {folds} folds: {counts[1]} positives and {counts[0]} negatives; "
            f"each class needs at least {need}"
        )
    positions = np.arange(len(labels))
    if folds == 0:
        try:
            train, test = _split_off(positions, labels, groups, test_fraction, seed)
        except ValueError:
            raise DataError(f"test_fraction: {test_fraction} of {len(labels)} sequences is too few for a "
                            "stratified test split (it needs at least one sequence of each class on both "
                            "sides)") from None
        parts = [(np.sort(train), np.sort(test))]
    elif groups is None:
        parts = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(positions, labels))
    else:
        try:
            parts = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(positions, labels, groups))
        except ValueError:
            raise DataError(f"folds: {folds} folds need at least {folds} groups of overlapping sequences, got "
                            f"{len(np.unique(groups))} (group_overlap)") from None
    rows = []
    for fold, (train, test) in enumerate(parts, start=1):
        try:
            fit, dev = _split_off(train, labels, groups, val_fraction, seed)
        except ValueError:
            per_class = {c: int((labels[train] == c).sum()) for c in (1, 0)}
            raise DataError(
                f"fold {fold}: its training part ({per_class[1]} positives, {per_class[0]} negatives) is too "
                f"small for a stratified validation split of val_fraction {val_fraction}, which needs at least "
                "one sequence of each class on both sides; give more sequences, fewer folds or a larger "
                "val_fraction") from None
        for split, idx in (("train", fit), ("dev", dev), ("test", test)):
            rows.append(pd.DataFrame({"index": np.sort(idx), "fold": fold, "split": split}))
    rows = pd.concat(rows, ignore_index=True)
    if groups is not None:
        _check_classes(rows, labels)
    return rows


def _fixed_test_split(labels: np.ndarray, fixed_test: np.ndarray, seed: int, val_fraction: float,
                      groups: np.ndarray | None = None) -> pd.DataFrame:
    positions = np.arange(len(labels))
    test, rest = positions[fixed_test], positions[~fixed_test]
    for part, name in ((test, "the test set"), (rest, "the training data")):
        counts = {c: int((labels[part] == c).sum()) for c in (1, 0)}
        if min(counts.values()) < 2:
            raise DataError(f"{name} holds {counts[1]} positives and {counts[0]} negatives; each class needs at "
                            "least 2 (a test set needs both classes to be scored, training a validation split)")
    try:
        fit, dev = _split_off(rest, labels, groups, val_fraction, seed)
    except ValueError:
        raise DataError(f"val_fraction: {val_fraction} of {len(rest)} training sequences is too few for a stratified "
                        "validation split (it needs at least one sequence of each class on both sides)") from None
    return pd.concat([pd.DataFrame({"index": np.sort(idx), "fold": 1, "split": split})
                      for split, idx in (("train", fit), ("dev", dev), ("test", test))], ignore_index=True)


def _length_stats(lengths: pd.Series) -> dict:
    return {"min": int(lengths.min()), "max": int(lengths.max()),
            "mean": round(float(lengths.mean()), 2), "median": float(lengths.median())}


def build_manifest(data: LabelledSet, assignment: pd.DataFrame, **settings) -> dict:
    table = data.table
    sizes = (assignment.groupby(["fold", "split"]).size().unstack("split")[list(SPLITS)])
    test = data.sources.get("test_set")
    return {
        "inputs": data.sources,
        "protocol": protocol_of(settings.get("folds"), test is not None),
        "test_sha256": test["sha256"] if test else None,
        "data_sha256": data.data_sha256,
        "counts": {"total": len(table), "positives": int(table.label.sum()),
                   "negatives": int((table.label == 0).sum())},
        "length": _length_stats(table.sequence.str.len()),
        **settings,
        "fold_sizes": [{"fold": int(f), **{s: int(n) for s, n in row.items()}}
                       for f, row in sizes.iterrows()],
        "rbp_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_folds(data: LabelledSet, assignment: pd.DataFrame, out_dir: str | Path, k: int,
                **settings) -> dict:
    """Write the folds folder; it appears whole or not at all.

    `sequences.tsv` (id, label, sequence), `folds.tsv` (id, label, fold, split), per fold
    `fold-N/{train,dev,test}.tsv` in DNABERT's format (`sequence<TAB>label`, space-joined k-mers),
    and `manifest.json`. Returns the manifest.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    table = data.table
    long = assignment.assign(id=table.id.to_numpy()[assignment["index"]],
                             label=table.label.to_numpy()[assignment["index"]])
    folds_table = long[["id", "label", "fold", "split"]]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        table.drop(columns="fixed_test", errors="ignore").to_csv(tmp / "sequences.tsv", sep="\t", index=False)
        folds_table.to_csv(tmp / "folds.tsv", sep="\t", index=False)
        kmer_text = np.array(kmer_strings(table.sequence, k), dtype=object)
        for (fold, split), part in long.groupby(["fold", "split"]):
            fold_dir = tmp / f"fold-{fold}"
            fold_dir.mkdir(exist_ok=True)
            pd.DataFrame({"sequence": kmer_text[part["index"]], "label": part.label}).to_csv(
                fold_dir / f"{split}.tsv", sep="\t", index=False)
        manifest = build_manifest(data, assignment, k=k, **settings,
                                  folds_sha256=sha256_file(tmp / "folds.tsv"))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the folder is the user's like any other
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


PROTOCOLS = {"cv": "cross-validation", "split": "one split", "fixed_test": "fixed test set"}


def protocol_of(folds: int | None, fixed_test: bool) -> str:
    """How test figures are made: `fixed_test` (a given test file, scored once per model), `cv` (each
    sequence tested in one of K folds) or `split` (one stratified train/test split)."""
    return "fixed_test" if fixed_test else ("split" if folds == 0 else "cv")


def describe_protocol(manifest: dict) -> str:
    """One phrase for tables and reports: which protocol the test figures come from."""
    protocol = manifest.get("protocol") or protocol_of(manifest.get("folds"), False)
    if protocol == "fixed_test":
        test = manifest["inputs"]["test_set"]
        return (f"fixed test set: {Path(test['path']).name} ({test['records']:,} sequences, sha256 "
                f"{test['sha256'][:12]}), scored once per model")
    if protocol == "split":
        return f"one stratified split: {manifest.get('test_fraction')} of the sequences held out for test"
    return f"{manifest.get('folds')}-fold cross-validation: each sequence tested once, by the fold that left it out"


def input_paths(params, data_dir: str | Path | None = None) -> dict[str, Path]:
    """The FASTA files named by params, by role: positives and negatives, or labelled; and test_set
    when there is one (synthetic files are written into `data_dir` first)."""
    from rbp.config import resolve

    if params.synthetic:
        if data_dir is None:
            raise RbpError("the synthetic set needs a folder to be written to")
        return dict(zip(("positives", "negatives"), write_synthetic(data_dir, seed=params.seed), strict=True))
    base = resolve(params.data_dir)
    if not base.is_dir():
        raise RbpError(f"data_dir: {base} is not a directory")
    paths = ({"labelled": base / params.labelled} if params.labelled
             else {"positives": base / params.positives, "negatives": base / params.negatives})
    if params.test_set:
        paths["test_set"] = base / params.test_set
    return paths


def load_dataset(params, data_dir: str | Path | None = None) -> LabelledSet:
    paths = input_paths(params, data_dir)
    return load_labelled(paths.get("positives"), paths.get("negatives"), ambiguous=params.ambiguous, k=params.k,
                         max_length=params.max_sequence_length, labelled=paths.get("labelled"),
                         test_set=paths.get("test_set"), label_key=params.label_key)


def assign_folds(table: pd.DataFrame, params) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The folds of `table` (sequence, label, and fixed_test when there is a test file) as params ask,
    and the groups of overlapping sequences they keep together (None with `group_overlap: null`)."""
    groups = overlap_groups(table.sequence.tolist(), params.group_overlap) if params.group_overlap else None
    fixed_test = table["fixed_test"].to_numpy() if "fixed_test" in table else None
    return make_folds(table.label, params.folds, params.seed, params.val_fraction, params.test_fraction, fixed_test,
                      groups), groups


def prepare_folds(params, run_dir: str | Path) -> dict:
    """Read the data that params name and write `<run_dir>/folds`; returns the manifest."""
    run_dir = Path(run_dir)
    data = load_dataset(params, run_dir / "data")
    n_before = len(data.table)
    data.table = apply_window(data.table, params.length, params.short_sequences)
    assignment, groups = assign_folds(data.table, params)
    return write_folds(
        data, assignment, run_dir / "folds", params.k,
        dataset=params.dataset_name, synthetic=params.synthetic, folds=params.folds,
        seed=params.seed, val_fraction=params.val_fraction, group_overlap=params.group_overlap,
        overlapping=0 if groups is None else int((np.bincount(groups)[groups] > 1).sum()),
        test_fraction=params.test_fraction if params.folds == 0 and not params.test_set else None,
        ambiguous=params.ambiguous, length=params.length, short_sequences=params.short_sequences,
        n_dropped_short=n_before - len(data.table),
    )


def describe_source(params) -> str:
    """A Markdown line for a notebook's header: where the data come from, loudly if synthetic."""
    if params.synthetic:
        return ("**SYNTHETIC DATA.** No `data_dir` was given, so this run uses the built-in synthetic "
                "set (3101 + 3101 sequences of 81 nt, a Pumilio-like UGUAHAUA element planted in "
                "part of the positives). It shows the pipeline working; its numbers say nothing "
                "about real binding sites. Set `data_dir` to a folder with your FASTA files.")
    from rbp.config import resolve

    base = resolve(params.data_dir)
    if params.labelled:
        line = (f"Data set **{params.dataset_name}**: `{base / params.labelled}` (the label of each record in its "
                f"header, `{params.label_key}:1` bound, `{params.label_key}:0` not).")
    else:
        line = (f"Data set **{params.dataset_name}**: `{base / params.positives}` (label 1) and "
                f"`{base / params.negatives}` (label 0).")
    if params.test_set:
        line += (f" **Fixed test set** `{base / params.test_set}`: every model is trained and chosen on the "
                 "training data alone and scores the test set once.")
    return line


class Folds:
    """A folds folder written by `write_folds`, as the model notebooks read it.

    With `length`, each sequence is cut to its centred window of that many nt when read (the fold
    assignment stays: a length sweep trains every length on the same folds); sequences shorter
    than the window are kept whole or dropped by `short_sequences`.
    """

    def __init__(self, folds_dir: str | Path, length: int | None = None, short_sequences: str = "keep"):
        self.dir = Path(folds_dir)
        if not (self.dir / "manifest.json").is_file():
            raise RbpError(f"{self.dir}: no folds here (manifest.json missing); run 01_preprocess first")
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        self.sequences = pd.read_csv(self.dir / "sequences.tsv", sep="\t", keep_default_na=False,
                                     dtype={"id": str})
        self.assignment = pd.read_csv(self.dir / "folds.tsv", sep="\t", dtype={"id": str},
                                      keep_default_na=False)
        self.length = length if length is not None else self.manifest.get("length")
        if length is not None:
            if length < self.k:
                raise DataError(f"length: {length} nt is shorter than k = {self.k}")
            self.sequences = apply_window(self.sequences, length, short_sequences)
            self._check_both_classes()

    def _check_both_classes(self) -> None:
        kept = self.assignment[self.assignment.id.isin(set(self.sequences.id))]
        for (fold, split), part in kept.groupby(["fold", "split"]):
            if part.label.nunique() < 2:
                raise DataError(f"length {self.length}: after dropping shorter sequences, fold {fold} "
                                f"{split} holds only one class; use short_sequences: keep or a shorter length")
        if kept.groupby(["fold", "split"]).ngroups < self.assignment.groupby(["fold", "split"]).ngroups:
            raise DataError(f"length {self.length}: no sequences of that length are left in some fold")

    @property
    def fold_numbers(self) -> list[int]:
        return sorted(self.assignment.fold.unique().tolist())

    @property
    def k(self) -> int:
        return int(self.manifest["k"])

    def positions(self, fold: int, split: str) -> np.ndarray:
        """Row numbers in `sequences` of one split of one fold, in the order of `sequences.tsv`."""
        ids = self.assignment.loc[(self.assignment.fold == fold) & (self.assignment.split == split), "id"]
        return np.flatnonzero(self.sequences.id.isin(set(ids)).to_numpy())

    def split(self, fold: int, split: str) -> pd.DataFrame:
        """id, sequence and label of one split of one fold, in the order of `sequences.tsv`."""
        return self.sequences.iloc[self.positions(fold, split)].reset_index(drop=True)


def folds_for(params, folds_dir: str | Path | None, run_dir: str | Path) -> Folds:
    """The folds a model notebook trains on: those 01_preprocess wrote (`folds_dir`), or, when a
    notebook runs on its own, the same folds made here from the same data, k and seed; cut to
    the params' `length` window."""
    if not folds_dir:
        prepare_folds(params, run_dir)
        folds_dir = Path(run_dir) / "folds"
    return Folds(folds_dir, params.length, params.short_sequences)
