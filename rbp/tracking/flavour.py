"""The MLflow flavour of a cross-validation's fold ensemble: the `rbp.fold_ensemble` folder wrapped as a
pyfunc model, logged on the CV run and registered as `<dataset>-<family>` with a description of its
CV figures (`rbp.tracking.registry` resolves model URIs back to that folder).

Through pyfunc (`mlflow.pyfunc.load_model(uri).predict(frame)`), the input is a table with a
`sequence` column (RNA or DNA, any case) and the output has `probability` (the fold models' mean)
and `call` (1 at or above the validation-chosen threshold). A sequence longer than the training
window gets its best window's probability. The inference parameter `fold` (1..K) asks for one fold
model's probability instead of the ensemble's.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import warnings
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature

from rbp.errors import RbpError
from rbp.fasta import AMBIGUOUS, NUCLEOTIDES
from rbp.fold_ensemble import FoldEnsemble
from rbp.tracking.store import client

ARTIFACT = "predictor"  # the predictor folder's key among the MLflow model's artifacts
MODEL_NAME = "model"  # the logged model's name on its CV run: runs:/<cv run id>/model
PACKAGE = Path(__file__).resolve().parent.parent  # rbp/, shipped inside every logged model
REQUIREMENTS = ("torch", "transformers", "safetensors", "numpy", "pandas", "scikit-learn", "scipy", "pyyaml",
                "mlflow")


def registered_name(dataset: str, family: str) -> str:
    return f"{dataset}-{family}"


def requirements() -> list[str]:
    """The installed versions of what the model needs (pinned as this environment has them)."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]


def _normalise(frame: pd.DataFrame) -> list[str]:
    if "sequence" not in frame.columns:
        raise RbpError(f"the input needs a `sequence` column (it has {', '.join(map(str, frame.columns))})")
    sequences = [str(s).strip().upper().replace("U", "T") for s in frame["sequence"]]
    for row, sequence in enumerate(sequences):
        if not sequence or not set(sequence) <= NUCLEOTIDES | AMBIGUOUS:  # the letters a FASTA file may hold
            raise RbpError(f"row {row}: sequence {sequence[:20]!r} holds letters that are not nucleotides")
    return sequences


class EnsembleModel(mlflow.pyfunc.PythonModel):
    """The pyfunc face of a `FoldEnsemble` folder."""

    # The signature is given when the model is logged; MLflow's type-hint validation (and its warning
    # that `predict` has no hints) does not apply.
    _skip_type_hint_validation = True

    def load_context(self, context):
        self.predictor = FoldEnsemble.load(context.artifacts[ARTIFACT], device="auto")

    def predict(self, context, model_input, params=None):
        fold = int((params or {}).get("fold", 0)) or None
        return self.predictor.table(_normalise(pd.DataFrame(model_input)), fold)


def _description(predictor: FoldEnsemble) -> str:
    info = predictor.info
    figures = info.get("cv", {})
    auc = figures.get("mean_test_auc"), figures.get("std_test_auc")
    lines = [f"{predictor.label} ({info.get('init', '')}) trained on `{info.get('dataset')}`"
             f"{' (synthetic)' if info.get('synthetic') else ''}: an ensemble of {len(predictor.folds)} fold models "
             f"(mean probability), {predictor.k}-mers, windows of {predictor.window} nt."]
    if None not in auc:
        lines.append(f"Cross-validated test ROC AUC {auc[0]:.4f} ± {auc[1]:.4f}, AUPRC "
                     f"{figures.get('mean_test_auprc', float('nan')):.4f}, accuracy "
                     f"{figures.get('mean_test_acc', float('nan')):.4f} over {len(predictor.folds)} folds "
                     "(each fold model on its own test fold).")
    lines.append(f"Decision threshold {predictor.threshold:.4f}: {predictor.threshold_criterion}.")
    if info.get("cv_run_id"):
        lines.append(f"CV run `{info['cv_run_id']}`.")
    return " ".join(lines).replace(" ()", "")


def log_model(predictor: FoldEnsemble, dataset: str, register: bool = True):
    """Log the predictor on the active run as `model` and register it; returns (model URI, version or None)."""
    example = pd.DataFrame({"sequence": ["ACGU" * (predictor.window // 4) + "A" * (predictor.window % 4)]})
    output = pd.DataFrame({"probability": [0.5], "call": [1]})
    name = registered_name(dataset, predictor.family.name) if register else None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hint about integer columns (`call` is 0/1)
        signature = infer_signature(example, output, params={"fold": 0})
        folder = predictor.save(Path(tmp) / ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME, python_model=EnsembleModel(), artifacts={ARTIFACT: str(folder)},
            code_paths=[str(PACKAGE)], signature=signature, input_example=example,
            pip_requirements=requirements(), registered_model_name=name,
            metadata={"rbp_family": predictor.family.name, "threshold": predictor.threshold,
                      "window": predictor.window, "k": predictor.k})
    version = info.registered_model_version
    if name and version is not None:
        client().update_model_version(name, str(version), _description(predictor))
    return info.model_uri, version
