"""What a finished cross-validation is once read back, as plain data: a CV run (its id and tags),
its results (fold metrics, out-of-fold predictions, validation curves), and the label that tables and
figures give its model. `rbp.tracking.reading` fills them from MLflow; the comparison, the length
sweep and the leaderboard take them as they are."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from rbp.families import FAMILIES


@dataclass(frozen=True)
class CVRun:
    """One model's cross-validation run (the parent of its fold runs)."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    tags: dict = field(hash=False, compare=False)

    @property
    def family(self) -> str:
        return self.tags.get("model_family", "")

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def folds_sha256(self) -> str | None:
        return self.tags.get("folds_sha256")

    @property
    def label(self) -> str:
        return model_label(self.tags)


@dataclass
class ModelResults:
    label: str
    cv_run: CVRun
    fold_metrics: pd.DataFrame  # fold, best_epoch, best_val_auc, test_* (one row per fold), folds_sha256
    oof: pd.DataFrame | None  # pooled out-of-fold predictions: id, label, probability, fold
    history: pd.DataFrame  # fold, epoch, val_auc


PARITY = "parity (no selection)"  # a run of DNABERT's own protocol: the final epoch, no validation split


def model_label(tags: dict) -> str:
    """The family's label with what sets the run apart: "LSTM", "DNABERT (pretrained)",
    "DNABERT (scratch, 41 nt)", "DNABERT (pretrained, parity (no selection))", or the family name
    of an unregistered model."""
    family = tags.get("model_family", "") or "unknown"
    name = FAMILIES[family].label if family in FAMILIES else family
    details = [tags["init"]] if tags.get("init") else []
    if tags.get("length", "full") != "full":
        details.append(f"{tags['length']} nt")
    if tags.get("selection") == "final":
        details.append(PARITY)
    return f"{name} ({', '.join(details)})" if details else name


def in_table_order(cv_runs: list[CVRun]) -> list[CVRun]:
    """The registry's order of families, then the others; by label and run name within."""
    rank = {name: i for i, name in enumerate(FAMILIES)}
    return sorted(cv_runs, key=lambda r: (rank.get(r.family, len(rank)), r.label, r.run_name))


def pipeline_run_of(cv_runs: list[CVRun]) -> str | None:
    """The pipeline run the CV runs share (where the comparison is logged), or None."""
    parents = {run.parent_run_id for run in cv_runs}
    return parents.pop() if len(parents) == 1 else None


def unique_labels(cv_runs: list[CVRun]) -> dict[str, CVRun]:
    """Label -> run; two runs with the same label (e.g. from two pipelines) get their run id added."""
    counts = pd.Series([run.label for run in cv_runs]).value_counts()
    return {(run.label if counts[run.label] == 1 else f"{run.label} [{run.run_id[:8]}]"): run
            for run in cv_runs}


def describe_runs(cv_runs: list[CVRun]) -> pd.DataFrame:
    return pd.DataFrame([{"model": label, "run": run.run_name, "run_id": run.run_id, "status": run.status,
                          "folds_sha256": (run.folds_sha256 or "")[:12]}
                         for label, run in unique_labels(cv_runs).items()])
