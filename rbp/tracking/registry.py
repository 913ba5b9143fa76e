"""A cross-validation as a deployable MLflow model: the `rbp.predictor` folder wrapped as a pyfunc
model, logged on the CV run, registered as `<dataset>-<family>` with a description of its CV figures,
and model URIs resolved back to that folder.

Through pyfunc (`mlflow.pyfunc.load_model(uri).predict(frame)`), the input is a table with a
`sequence` column (RNA or DNA, any case) and the output has `probability` (the fold models' mean)
and `call` (1 at or above the validation-chosen threshold). A sequence longer than the training
window gets its best window's probability. The inference parameter `fold` (1..K) asks for one fold
model's probability instead of the ensemble's.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import tempfile
import warnings
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from rbp.errors import RbpError
from rbp.families import FAMILIES
from rbp.fasta import AMBIGUOUS, NUCLEOTIDES
from rbp.predictor import MANIFEST, Predictor

ARTIFACT = "predictor"  # the predictor folder's key among the MLflow model's artifacts
MODEL_NAME = "model"  # the logged model's name on its CV run: runs:/<cv run id>/model
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
    """The pyfunc face of a `Predictor` folder."""

    # The signature is given when the model is logged; MLflow's type-hint validation (and its warning
    # that `predict` has no hints) does not apply.
    _skip_type_hint_validation = True

    def load_context(self, context):
        self.predictor = Predictor.load(context.artifacts[ARTIFACT], device="auto")

    def predict(self, context, model_input, params=None):
        fold = int((params or {}).get("fold", 0)) or None
        return self.predictor.table(_normalise(pd.DataFrame(model_input)), fold)


def _description(predictor: Predictor) -> str:
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


def log_model(predictor: Predictor, dataset: str, register: bool = True):
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
            code_paths=[str(Path(__file__).parent)], signature=signature, input_example=example,
            pip_requirements=requirements(), registered_model_name=name,
            metadata={"rbp_family": predictor.family.name, "threshold": predictor.threshold,
                      "window": predictor.window, "k": predictor.k})
    version = info.registered_model_version
    if name and version is not None:
        MlflowClient().update_model_version(name, str(version), _description(predictor))
    return info.model_uri, version


# ------------------------------------------------------------------------------------- resolving URIs
def latest_version(name: str):
    if not re.fullmatch(r"[\w.\-/ ]+", name):  # not a name the registry can hold (and no quote in the filter)
        return None
    versions = MlflowClient().search_model_versions(f"name = '{name}'")
    return max(versions, key=lambda v: int(v.version)) if versions else None


def resolve_uri(model: str) -> str:
    """A model URI from what a user typed: `models:/name/version`, `models:/name@alias`,
    `runs:/<id>/model`, a registered model name (its latest version), or a data set name (the most
    recently registered version among `<dataset>-<family>`)."""
    if re.match(r"^(models|runs|file|s3|gs|https?):", model):
        return model
    version = latest_version(model)
    if version is None:
        candidates = [v for family in FAMILIES if (v := latest_version(registered_name(model, family)))]
        if not candidates:
            known = sorted(m.name for m in MlflowClient().search_registered_models())
            raise RbpError(f"model {model!r}: no registered model or data set of that name"
                           + (f"; registered: {', '.join(known)}" if known else "; nothing is registered yet"))
        version = max(candidates, key=lambda v: v.creation_timestamp)
    return f"models:/{version.name}/{version.version}"


def download(uri: str, directory: str | Path) -> Path:
    """The predictor folder of a model URI, downloaded under `directory`."""
    from rbp.runs import quiet_downloads

    try:
        with quiet_downloads():
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(directory)))
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RbpError(f"model {uri}: cannot be loaded ({first})") from None
    found = [p.parent for p in local.rglob(MANIFEST)]
    if not found:
        raise RbpError(f"model {uri}: not an rbp model (no {ARTIFACT}/{MANIFEST} inside)")
    return found[0]


def load(model: str, device: str = "auto") -> tuple[Predictor, str]:
    """A Predictor from a model URI, registered name or data set name; and its URI. (A local folder:
    `rbp.predict.load_model`, which needs no MLflow.)"""
    from rbp.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    uri = resolve_uri(model)
    with tempfile.TemporaryDirectory() as tmp:
        return Predictor.load(download(uri, tmp), device), uri


def model_card(predictor: Predictor) -> str:
    return json.dumps({"family": predictor.family.name, "k": predictor.k, "window": predictor.window,
                       "threshold": predictor.threshold, **predictor.info}, indent=2, default=str)


# ------------------------------------------------------------------------------------- the predict run
def pipeline_models(pipeline_run_id: str) -> dict[str, str]:
    """Label -> model URI of the models the CV runs of a pipeline run logged (registered or not)."""
    from rbp.runs import find_cv_runs, unique_labels

    models = {}
    for label, run in unique_labels(find_cv_runs(pipeline_run_id=pipeline_run_id)).items():
        if "registered_model" in run.tags:
            models[label] = f"models:/{run.tags['registered_model']}"
        elif "model_uri" in run.tags:
            models[label] = run.tags["model_uri"]
    return models


def dataset_models(dataset: str) -> dict[str, str]:
    """Label -> URI of the latest registered version of each family trained on `dataset`."""
    found = {FAMILIES[family].label: latest_version(registered_name(dataset, family)) for family in FAMILIES}
    return {label: f"models:/{v.name}/{v.version}" for label, v in found.items() if v is not None}


def slug(label: str) -> str:
    """A model label as an MLflow key or folder name: `DNABERT (pretrained)` -> `dnabert-pretrained`."""
    return re.sub(r"[^a-z0-9.]+", "-", label.lower()).strip("-") or "model"


def log_predict_run(results: dict, fasta: str | Path, dataset: str, parent_run_id: str | None = None,
                    extra_metrics: dict | None = None) -> str:
    """A `predict` run: the FASTA as its dataset input (sha256 digest), the settings, the counts per
    model, and each model's output folder as artifacts. `results`: label -> `PredictResult`."""
    import hashlib

    import mlflow.data

    from rbp.tracking import house_tags, run

    digest = hashlib.sha256(Path(fasta).read_bytes()).hexdigest()
    first = next(iter(results.values()))
    with run("predict", parent_run_id=parent_run_id,
             tags=house_tags(dataset, model_family="predict", input_sha256=digest)) as active:
        mlflow.log_params({"fasta": str(fasta), "stride": first.summary["stride"],
                           "motif": first.summary["motif"],
                           **{f"model.{slug(label)}": r.summary["model"] for label, r in results.items()}})
        for label, result in results.items():
            s, key = result.summary, slug(label)
            mlflow.log_metrics({f"{key}.sequences": s["sequences"], f"{key}.windows": s["windows"],
                                f"{key}.sites": s["sites"], f"{key}.threshold": s["threshold"],
                                f"{key}.seconds": s["seconds"]})
            mlflow.log_artifacts(str(result.out), f"predictions/{key}")
        if extra_metrics:
            mlflow.log_metrics(extra_metrics)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mlflow.log_input(mlflow.data.from_pandas(first.scores[["sequence_id", "length"]], source=str(fasta),
                                                     name=Path(fasta).name, digest=digest[:12]), context="inference")
    return active.info.run_id


def ensemble_members(params, folds, pipeline_run_id: str | None = None, device: str = "cpu") -> dict[str, Predictor]:
    """The models an ensemble combines: family name -> the Predictor its CV run logged, from the CV runs
    of `pipeline_run_id` (else of the data set's latest pipeline run) trained on these very folds and
    window length; `params.ensemble.members` names them, or every other family found."""
    from rbp.runs import find_cv_runs

    length = str(folds.length) if folds.length else "full"
    found = {run.family: run for run in find_cv_runs(params.dataset_name, pipeline_run_id)
             if run.family not in ("ensemble", "") and run.tags.get("length", "full") == length
             and run.folds_sha256 == folds.manifest["folds_sha256"] and "model_uri" in run.tags}
    wanted = [name for name in FAMILIES if name in (params.ensemble.members or found)]
    missing = [name for name in wanted if name not in found]
    if missing or len(wanted) < 2:
        have = ", ".join(found) or "none"
        needed = ", ".join(wanted) if missing else "two models or more"
        raise RbpError(f"ensemble: needs the finished CV runs of {needed} on these folds ({length} sequences) in "
                       f"the same pipeline run; found: {have}. Run their notebooks before 03_ensemble_cv "
                       "(ensemble.members names them; [] = every other model)")
    with tempfile.TemporaryDirectory() as tmp:
        return {name: Predictor.load(download(found[name].tags["model_uri"], Path(tmp) / name), device)
                for name in wanted}
