"""One recipe for many proteins, chosen on validation alone: every candidate recipe is trained once per
data set of a collection (RBP-31: a training and a fixed test file per set), exactly as the benchmark
trains (`params/rbp31.yaml`: the same stratified validation split of the training file, seed 42), and
candidates are ranked by their validation ROC AUC averaged over the sets. Every ensemble of candidates of
different families is scored from the cached predictions the same way. The test file of a set is scored
once per candidate for the record, printed beside the choice and never read by it.

    OMP_NUM_THREADS=2 python bench/rbp31_recipes.py --dir $RBP_RBP31_DIR [--only cnn-128x12 kmer_lr-3to6]
        [--sets 24_PARCLIP_QKI_hg19 ...] [--json out.json]

Finished (set, candidate) pairs are kept in bench/.data/rbp31/ and never run again, so the search can be
stopped and resumed. Sets are taken in name order, every candidate of a set before the next set.

`--group-overlap N` makes the validation split keep sequences that share N nt on one side
(`group_overlap`, as `params/rbp31.yaml` does now); its pairs are kept apart, in bench/.data/rbp31-overlapN/.
Without it the split is sequence by sequence (`group_overlap: null`), as the cached figures of
bench/.data/rbp31/ were made.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from rbp.cv import cross_validate
from rbp.data import folds_for
from rbp.families import make_family
from rbp.params import load_params

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).parent / ".data" / "rbp31"
BEST, DEFAULT = (load_params(ROOT / "params" / name) for name in ("best.yaml", "default.yaml"))


def section(params, family: str, **changes) -> tuple[str, dict]:
    """A candidate: the whole `family` section of `params`, with `changes`; complete, so that a later change
    of `params/rbp31.yaml` (which it overrides) leaves a candidate, and its cached figures, as they were."""
    return family, {**params.to_dict()[family], **changes}


CANDIDATES = {  # name -> (family, its whole section, which replaces params/rbp31.yaml's)
    "kmer_lr-3to6": section(DEFAULT, "kmer_lr"),
    "cnn-128x12": section(DEFAULT, "cnn"),  # the default job's
    "cnn-best.yaml": section(BEST, "cnn"),  # params/best.yaml, unchanged
    "cnn-256x12-mask0.1": section(DEFAULT, "cnn", channels=[256], kernel_size=[12], dropout=0.3, mask_fraction=0.1,
                                  max_epochs=25, patience=4),
    "cnn-2layer-dilated": section(DEFAULT, "cnn", channels=[128, 128], kernel_size=[12, 5], dilation=[1, 2],
                                  max_epochs=25, patience=4),
    "lstm-1layer-max": section(DEFAULT, "lstm"),  # the default job's
    "lstm-15epochs": section(DEFAULT, "lstm", max_epochs=15, patience=3),  # the same LSTM, trained longer
    # the default job's small DNABERT from scratch, every 3-mer of 101 nt, more epochs for 5x the data
    "dnabert-small-6epochs": section(DEFAULT, "dnabert", init="scratch", max_seq_length=101, max_epochs=6,
                                     patience=2),
}


def set_params(folder: Path, overrides: dict, family: str, group_overlap: int | None = None):
    return load_params(ROOT / "params" / "rbp31.yaml",
                       {"data_dir": str(folder), "labelled": "train.fa.gz", "test_set": "test.fa.gz",
                        "dataset": folder.name, "group_overlap": group_overlap, family: overrides})


def cache_of(group_overlap: int | None) -> Path:
    """Where a split's finished (set, candidate) pairs are kept."""
    return CACHE if group_overlap is None else CACHE.with_name(f"rbp31-overlap{group_overlap}")


def run_candidate(folder: Path, name: str, group_overlap: int | None = None) -> dict:
    family_name, overrides = CANDIDATES[name]
    params = set_params(folder, overrides, family_name, group_overlap)
    with tempfile.TemporaryDirectory() as tmp:
        folds = folds_for(params, None, Path(tmp))
        family = make_family(family_name, params)
        start = time.perf_counter()
        (result,) = cross_validate(family, folds, getattr(params, family_name), torch.device("cpu"), params.seed,
                                   progress=False)
        seconds = time.perf_counter() - start
    frame = pd.concat([result.predictions.assign(split="test"), result.val_predictions.assign(split="dev")])
    out = cache_of(group_overlap) / folder.name
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{name}.csv.gz", index=False)
    record = {"set": folder.name, "name": name, "family": family_name, "overrides": overrides,
              "seconds": round(seconds), "best_epoch": result.best_epoch, "val_auc": result.training.best_val_auc,
              **_scores(frame)}
    (out / f"{name}.json").write_text(json.dumps(record, indent=1))
    return record


def _scores(frame: pd.DataFrame) -> dict:
    dev, test = frame[frame.split == "dev"], frame[frame.split == "test"]
    return {"val_auc_scored": roc_auc_score(dev.label, dev.probability),
            "val_auprc": average_precision_score(dev.label, dev.probability),
            "test_auc": roc_auc_score(test.label, test.probability),
            "test_auprc": average_precision_score(test.label, test.probability),
            "test_chance_auprc": float(test.label.mean())}


def ensemble_records(folder: Path, names: list[str], cache: Path = CACHE) -> list[dict]:
    """Every mean of two or more cached candidates of different families on one set."""
    frames = {n: pd.read_csv(cache / folder.name / f"{n}.csv.gz", dtype={"id": str}) for n in names}
    rows = []
    for size in range(2, len(names) + 1):
        for members in itertools.combinations(names, size):
            families = [CANDIDATES[m][0] for m in members]
            if len(set(families)) < len(families):
                continue
            merged = None
            for m in members:
                part = frames[m][["id", "split", "label", "probability"]].rename(columns={"probability": m})
                merged = part if merged is None else merged.merge(part, on=["id", "split", "label"])
            merged["probability"] = merged[list(members)].mean(axis=1)
            scores = _scores(merged)
            rows.append({"set": folder.name, "name": " + ".join(members), "family": "ensemble",
                         "val_auc": scores["val_auc_scored"], **scores})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="the collection: one folder per set, train.fa.gz and test.fa.gz")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    parser.add_argument("--sets", nargs="*", default=None, help="set names (default: every set of --dir)")
    parser.add_argument("--group-overlap", type=int, default=None,
                        help="keep sequences sharing this many nt on one side of the validation split")
    parser.add_argument("--json", type=Path, help="write every record here")
    args = parser.parse_args()
    cache = cache_of(args.group_overlap)
    sets = sorted(p for p in Path(args.dir).iterdir() if (p / "train.fa.gz").is_file() and (p / "test.fa.gz").is_file())
    sets = [p for p in sets if args.sets is None or p.name in args.sets]
    names = args.only if args.only is not None else list(CANDIDATES)
    for folder in sets:
        for name in names:
            if not (cache / folder.name / f"{name}.json").is_file():
                print(f"{folder.name}: {name} …", flush=True)
                record = run_candidate(folder, name, args.group_overlap)
                print(f"  validation ROC AUC {record['val_auc']:.4f}, {record['seconds']} s", flush=True)
    records = []
    for folder in sets:
        done = [n for n in CANDIDATES if (cache / folder.name / f"{n}.json").is_file()]
        records += [json.loads((cache / folder.name / f"{n}.json").read_text()) for n in done]
        records += ensemble_records(folder, done, cache)
    table = pd.DataFrame(records)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    complete = table.groupby("name").set.nunique() == len(sets)  # a recipe is judged on every set or not at all
    judged = table[table.name.isin(complete[complete].index)]
    summary = judged.groupby("name").agg(sets=("set", "nunique"), val_auc=("val_auc", "mean"),
                                         val_auprc=("val_auprc", "mean"), test_auc=("test_auc", "mean"),
                                         test_auprc=("test_auprc", "mean"), seconds=("seconds", "sum"))
    print(f"\nChosen on the mean validation ROC AUC over {len(sets)} sets (test columns for the record only):\n")
    print(summary.sort_values("val_auc", ascending=False).to_markdown(floatfmt=".4f"))
    wide = judged.pivot(index="set", columns="name", values="val_auc")
    print("\nValidation ROC AUC per set:\n")
    print(wide.to_markdown(floatfmt=".4f"))


if __name__ == "__main__":
    main()
