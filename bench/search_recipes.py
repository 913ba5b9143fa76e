"""Recipe search on a real data set, chosen on validation alone: every candidate recipe of the CNN,
the LSTM and the k-mer LR is cross-validated on the same folds; then every ensemble of two or more
of them (the mean probability, fold by fold, as `rbp.ensemble` computes it) is scored from the
cached fold predictions. Candidates are ranked by the mean over folds of their validation ROC AUC;
test figures are printed beside them for the record and take no part in the choice.

    OMP_NUM_THREADS=1 python bench/search_recipes.py --data ../shared/data/pum2 [--only cnn-wide]

Finished candidates are kept in bench/.data/search/ and not run again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from rbp.cv import cross_validate, summary
from rbp.data import folds_for
from rbp.families import make_family
from rbp.metrics import binary_metrics
from rbp.params import load_params

CACHE = Path(__file__).parent / ".data" / "search"
CNN = {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "max_epochs": 40, "patience": 6}
CANDIDATES = {  # name -> (family, section overrides)
    "cnn-128x12": ("cnn", {**CNN}),
    "cnn-256x12-drop0.3": ("cnn", {**CNN, "channels": [256], "dropout": 0.3}),
    "cnn-128x12-mask0.1": ("cnn", {**CNN, "mask_fraction": 0.1}),
    "cnn-2layer-dilated": ("cnn", {**CNN, "channels": [128, 128], "kernel_size": [12, 5], "dilation": [1, 2]}),
    "cnn-2layer-dilated-mask0.1": ("cnn", {**CNN, "channels": [128, 128], "kernel_size": [12, 5],
                                           "dilation": [1, 2], "mask_fraction": 0.1}),
    "cnn-256x12-drop0.3-mask0.15": ("cnn", {**CNN, "channels": [256], "dropout": 0.3, "mask_fraction": 0.15}),
    "cnn-256x16-drop0.4-mask0.2": ("cnn", {**CNN, "channels": [256], "kernel_size": [16], "dropout": 0.4,
                                           "mask_fraction": 0.2}),
    "lstm-1layer-max-mask0.3": ("lstm", {"max_epochs": 25, "patience": 5, "mask_fraction": 0.3}),
    # params/lstm_tuned.yaml (53 minutes on one thread): imported from its CV run with --import
    "lstm-tuned-2layer-last-mask0.3": ("lstm", {"num_layers": 2, "readout": "last", "max_epochs": 50,
                                                "patience": 10, "mask_fraction": 0.3}),
    "kmer_lr-3to6": ("kmer_lr", {}),
    "kmer_lr-1to5": ("kmer_lr", {"k_min": 1, "k_max": 5, "c_grid": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]}),
}


def run_candidate(name: str, data: str, seed: int) -> dict:
    family_name, section = CANDIDATES[name]
    params = load_params(None, {"data_dir": data, "seed": seed, family_name: section})
    with tempfile.TemporaryDirectory() as tmp:
        folds = folds_for(params, None, Path(tmp))
        family = make_family(family_name, params)
        start = time.perf_counter()
        results = cross_validate(family, folds, getattr(params, family_name), torch.device("cpu"), seed,
                                 progress=False)
        seconds = time.perf_counter() - start
    frames = []
    for r in results:
        frames += [r.predictions.assign(split="test"), r.val_predictions.assign(split="dev")]
    pd.concat(frames).to_csv(CACHE / f"{name}.csv.gz", index=False)
    figures = summary(results)
    record = {"name": name, "family": family_name, "overrides": section, "seconds": round(seconds),
              "folds_sha256": folds.manifest["folds_sha256"], "best_epochs": [r.best_epoch for r in results],
              **{k: v for k, v in figures.items() if k.startswith(("mean_", "std_"))}}
    (CACHE / f"{name}.json").write_text(json.dumps(record, indent=1))
    return record


def import_run(name: str, cv_run_id: str) -> dict:
    """A candidate already cross-validated on these folds by `rbp run`: its fold predictions (test and
    validation) and figures, read from its MLflow CV run instead of training it again."""
    from rbp.tracking import connect, reading

    connect()
    cv_run = reading.cv_run(cv_run_id)
    frames = []
    for fold_run in reading.fold_runs(cv_run):
        frames += [reading.artifact_frame(fold_run.info.run_id, "predictions.csv").assign(split="test"),
                   reading.artifact_frame(fold_run.info.run_id, "val_predictions.csv").assign(split="dev")]
    pd.concat(frames).to_csv(CACHE / f"{name}.csv.gz", index=False)
    metrics = reading.run_metrics(cv_run_id)
    record = {"name": name, "family": CANDIDATES[name][0], "overrides": CANDIDATES[name][1], "cv_run_id": cv_run_id,
              "folds_sha256": cv_run.folds_sha256,
              "seconds": round(sum(r.data.metrics.get("fold_seconds", 0) for r in reading.fold_runs(cv_run))),
              **{k: v for k, v in metrics.items() if k.startswith(("mean_", "std_"))}}
    (CACHE / f"{name}.json").write_text(json.dumps(record, indent=1))
    return record


def ensemble_rows(names: list[str]) -> list[dict]:
    """Every ensemble of two or more cached candidates (one per family at most), scored fold by fold."""
    frames = {n: pd.read_csv(CACHE / f"{n}.csv.gz", dtype={"id": str}) for n in names}
    rows = []
    for size in range(2, len(names) + 1):
        for members in itertools.combinations(names, size):
            families = [CANDIDATES[m][0] for m in members]
            if len(set(families)) < len(families):
                continue
            merged = None
            for m in members:
                part = frames[m][["id", "split", "fold", "label", "probability"]].rename(columns={"probability": m})
                merged = part if merged is None else merged.merge(part, on=["id", "split", "fold", "label"])
            merged["probability"] = merged[list(members)].mean(axis=1)
            val, tests = [], []
            for _, fold in merged.groupby("fold"):
                dev, test = fold[fold.split == "dev"], fold[fold.split == "test"]
                val.append(roc_auc_score(dev.label, dev.probability))
                tests.append(binary_metrics(test.label, test.probability))
            test = pd.DataFrame(tests)
            rows.append({"name": " + ".join(members), "family": "ensemble",
                         "mean_best_val_auc": float(np.mean(val)), "std_best_val_auc": float(np.std(val, ddof=1)),
                         **{f"mean_test_{k}": float(test[k].mean()) for k in test},
                         **{f"std_test_{k}": float(test[k].std(ddof=1)) for k in test}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    parser.add_argument("--import", dest="imports", nargs="*", default=[], metavar="NAME=CV_RUN_ID",
                        help="take a candidate from a finished CV run on the same folds")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    for item in args.imports:
        name, _, run_id = item.partition("=")
        print(json.dumps(import_run(name, run_id)), flush=True)
    for name in args.only if args.only is not None else CANDIDATES:
        if not (CACHE / f"{name}.json").is_file():
            print(f"{name} …", flush=True)
            print(json.dumps(run_candidate(name, args.data, args.seed)), flush=True)
    done = [n for n in CANDIDATES if (CACHE / f"{n}.json").is_file()]
    rows = [json.loads((CACHE / f"{n}.json").read_text()) for n in done] + ensemble_rows(done)
    table = pd.DataFrame(rows).sort_values("mean_best_val_auc", ascending=False)
    columns = ["name", "family", "mean_best_val_auc", "std_best_val_auc", "mean_test_auc", "std_test_auc",
               "mean_test_acc", "seconds"]
    print(table.reindex(columns=columns).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
