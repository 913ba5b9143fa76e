"""A small fake MLflow store of pipeline, CV and fold runs with known metrics, for the readers of runs."""

import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from rbp import tracking

EXPERIMENT = "fake"
FOLDS_SHA = "f" * 64
N_SEQUENCES = 200
# Known per-fold test metrics; the other metrics are these shifted by a per-metric offset.
FOLD_AUC = {"lstm": [0.90, 0.92, 0.91, 0.93, 0.88], "dnabert": [0.95, 0.96, 0.94, 0.97, 0.955]}
OFFSET = {"test_auc": 0.0, "test_auprc": 0.01, "test_acc": -0.05, "test_f1": -0.06, "test_mcc": -0.2,
          "test_precision": -0.04, "test_recall": -0.07, "test_f1_macro": -0.055, "test_precision_macro": -0.045,
          "test_recall_macro": -0.05}
SEPARATION = {"lstm": 1.2, "dnabert": 2.0}  # how far positives' scores sit above negatives' (others: 1.5)


def fold_values(family: str, metric: str) -> np.ndarray:
    return np.array(FOLD_AUC[family]) + OFFSET[metric]


def fake_oof(family: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed + len(family))
    labels = np.arange(N_SEQUENCES) % 2
    logits = SEPARATION.get(family, 1.5) * labels + rng.normal(size=N_SEQUENCES)
    return pd.DataFrame({"id": [f"seq{i}" for i in range(N_SEQUENCES)], "label": labels,
                         "probability": 1 / (1 + np.exp(-logits)),
                         "fold": np.arange(N_SEQUENCES) // 2 % 5 + 1})


class FakeStore:
    """Pipeline runs with CV runs and fold runs, written straight through the client (fast)."""

    def __init__(self, experiment=EXPERIMENT):
        self.client = MlflowClient()
        self.experiment = experiment
        self.experiment_id = tracking.use_experiment(experiment)
        self.clock = 1_700_000_000_000  # start times one second apart: "latest" is well defined

    def _run(self, name, tags, parent=None):
        self.clock += 1000
        tags = {"dataset": self.experiment, **tags, **({"mlflow.parentRunId": parent} if parent else {})}
        run = self.client.create_run(self.experiment_id, start_time=self.clock, tags=tags, run_name=name)
        return run.info.run_id

    def _log_frame(self, run_id, frame, name):
        self.client.log_text(run_id, frame.to_csv(index=False), name)

    def pipeline(self, families=("lstm", "dnabert"), with_fold_runs=True, folds_sha=FOLDS_SHA,
                 name="fake-pipeline", fold_auc=None, val_auc=None, synthetic=True):
        """`fold_auc` (family -> five test AUCs) replaces FOLD_AUC; `val_auc` (family -> five
        validation AUCs of the chosen epochs) adds best_val_auc. The CV runs carry the summary over
        folds (mean_*, std_*, n_folds), as CVLogger logs it."""
        fold_auc = {**FOLD_AUC, **(fold_auc or {})}
        pipeline_id = self._run(name, {"model_family": "pipeline"})
        self.client.set_terminated(self._run("preprocess", {"model_family": "data"}, pipeline_id))
        cv_ids = {}
        for family in families:
            tags = {"model_family": family, "folds_sha256": folds_sha, "synthetic": str(synthetic).lower(),
                    **({"init": "pretrained"} if family == "dnabert" else {})}
            cv_id = cv_ids[family] = self._run(f"{family}_cv", tags, pipeline_id)
            oof, separation = fake_oof(family), SEPARATION.get(family, 1.5)
            rows = []
            for fold in range(1, 6):
                metrics = {m: fold_auc[family][fold - 1] + OFFSET[m] for m in OFFSET}
                if val_auc and family in val_auc:
                    metrics["best_val_auc"] = val_auc[family][fold - 1]
                rows.append({"fold": fold, "best_epoch": 2, **metrics})
                if with_fold_runs:
                    fold_id = self._run(f"fold-{fold}", {**tags, "fold": str(fold)}, cv_id)
                    history = [Metric("val_auc", separation / 4 + 0.05 * epoch + 0.01 * fold, 0, epoch)
                               for epoch in range(1, 3 + fold % 2)]
                    once = [Metric(k, v, 0, 0) for k, v in {**metrics, "best_epoch": 2}.items()]
                    self.client.log_batch(fold_id, metrics=history + once)
                    self._log_frame(fold_id, oof[oof.fold == fold], "predictions.csv")
                    self.client.set_terminated(fold_id)
            folds = pd.DataFrame(rows)
            summary = {f"{stat}_{key}": float(getattr(folds[key], stat)()) for key in folds.columns[2:]
                       for stat in ("mean", "std")}
            self.client.log_batch(cv_id, metrics=[Metric(k, v, 0, 0) for k, v in
                                                  {**summary, "n_folds": len(folds)}.items()])
            self._log_frame(cv_id, folds, "fold_metrics.csv")
            self._log_frame(cv_id, oof, "oof_predictions.csv")
            self.client.set_terminated(cv_id)
        return pipeline_id, cv_ids




def artifacts(run_id, path=None):
    out = []
    for item in MlflowClient().list_artifacts(run_id, path):
        out += artifacts(run_id, item.path) if item.is_dir else [item.path]
    return sorted(out)
