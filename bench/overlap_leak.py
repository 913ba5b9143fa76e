"""How much a validation split sees of its training part: for every set of a collection (a training and a
fixed test file per set, as RBP-31), the share of validation sequences that share a stretch of
`--overlap` nt with a training sequence (directly or through other sequences, `rbp.overlap`), under the
split `params/rbp31.yaml` makes sequence by sequence (`group_overlap: null`) and with `group_overlap`,
beside the same share for the test file, which the benchmark drew apart from the training file.

    python bench/overlap_leak.py --dir $RBP_RBP31_DIR [--overlap 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rbp.data import Folds, prepare_folds
from rbp.overlap import overlap_groups
from rbp.params import load_params

ROOT = Path(__file__).resolve().parent.parent


def shares(folder: Path, overlap: int, group_overlap: int | None) -> dict:
    """Shares of validation and test sequences (all, bound) in a group with a training sequence."""
    params = load_params(ROOT / "params" / "rbp31.yaml",
                         {"data_dir": str(folder), "labelled": "train.fa.gz", "test_set": "test.fa.gz",
                          "dataset": folder.name, "group_overlap": group_overlap})
    with tempfile.TemporaryDirectory() as tmp:
        prepare_folds(params, Path(tmp))
        folds = Folds(Path(tmp) / "folds")
        table = folds.sequences.merge(folds.assignment[["id", "split"]], on="id")
    table["group"] = overlap_groups(table.sequence.tolist(), overlap)
    trained = set(table.group[table.split == "train"])
    seen = table.group.isin(trained)
    out = {}
    for split, name in (("dev", "validation"), ("test", "test")):
        part = table.split == split
        out[f"{name}_seen"] = float(seen[part].mean())
        out[f"{name}_bound_seen"] = float(seen[part & (table.label == 1)].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--overlap", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for folder in sorted(p for p in args.dir.iterdir() if (p / "train.fa.gz").is_file()):
        plain = shares(folder, args.overlap, None)
        grouped = shares(folder, args.overlap, args.overlap)
        rows.append({"set": folder.name, **plain, "validation_seen_grouped": grouped["validation_seen"]})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"\nStretches of {args.overlap} nt shared with a training sequence (share of sequences)\n")
    print("| set | validation, all | validation, bound | test, all | test, bound | validation with group_overlap |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in [*table.itertuples(), None]:
        r = table.mean(numeric_only=True) if row is None else row._asdict()
        name = "**mean**" if row is None else r["set"]
        print(f"| {name} | {r['validation_seen']:.3f} | {r['validation_bound_seen']:.3f} | {r['test_seen']:.3f} | "
              f"{r['test_bound_seen']:.3f} | {r['validation_seen_grouped']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=np.float64))


if __name__ == "__main__":
    main()
