"""The model registry: model URIs resolved from what a user typed, registered models found by data
set or pipeline run, and their predictor folders downloaded and loaded (`rbp.tracking.flavour`
logs them)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from rbp.apply import load_model as load_local
from rbp.errors import RbpError
from rbp.families import FAMILIES
from rbp.fold_ensemble import MANIFEST, FoldEnsemble
from rbp.tracking.flavour import ARTIFACT, registered_name
from rbp.tracking.reading import find_cv_runs, unique_labels
from rbp.tracking.store import client, connect, quiet_downloads


def latest_version(name: str):
    if not re.fullmatch(r"[\w.\-/ ]+", name):  # not a name the registry can hold (and no quote in the filter)
        return None
    versions = client().search_model_versions(f"name = '{name}'")
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
            known = sorted(m.name for m in client().search_registered_models())
            raise RbpError(f"model {model!r}: no registered model or data set of that name"
                           + (f"; registered: {', '.join(known)}" if known else "; nothing is registered yet"))
        version = max(candidates, key=lambda v: v.creation_timestamp)
    return f"models:/{version.name}/{version.version}"


def download(uri: str, directory: str | Path) -> Path:
    """The predictor folder of a model URI, downloaded under `directory`."""
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


def load_model(model, device: str = "auto") -> tuple[FoldEnsemble, str]:
    """A FoldEnsemble and where it came from: as given, from a local folder (`rbp.apply.load_model`,
    which needs no MLflow), or from a model URI, registered name or data set name."""
    if isinstance(model, FoldEnsemble) or Path(str(model)).is_dir():
        return load_local(model, device)
    connect()
    uri = resolve_uri(str(model))
    with tempfile.TemporaryDirectory() as tmp:
        predictor = FoldEnsemble.load(download(uri, tmp), device)
    predictor.source = uri
    return predictor, uri


def pipeline_models(pipeline_run_id: str) -> dict[str, str]:
    """Label -> model URI of the models the CV runs of a pipeline run logged (registered or not)."""
    models = {}
    for label, run in unique_labels(find_cv_runs(pipeline_run_id=pipeline_run_id)).items():
        if "registered_model" in run.tags:
            models[label] = f"models:/{run.tags['registered_model']}"
        elif "model_uri" in run.tags:
            models[label] = run.tags["model_uri"]
    return models


def leaderboard_models(entry: str) -> dict[str, str]:
    """Data set -> model URI of the model chosen on validation in each data set of a leaderboard run
    (its name, `leaderboard-YYYYmmdd-HHMMSS`, or id): the models `rbp predict` applies side by side."""
    from rbp.leaderboard import EXPERIMENT
    from rbp.tracking.reading import artifact_frame, get_run

    connect()
    experiment = client().get_experiment_by_name(EXPERIMENT)
    found = (client().search_runs([experiment.experiment_id], f"attributes.run_name = '{entry}'",
                                  order_by=["attributes.start_time DESC"], max_results=1) if experiment else [])
    run = found[0] if found else get_run(entry, "model: leaderboard run")
    table = artifact_frame(run.info.run_id, "leaderboard.csv")
    if table is None or "chosen" not in table:
        raise RbpError(f"model {entry}: run {run.info.run_name} holds no leaderboard.csv; give a leaderboard run")
    models = {}
    for row in table[table.chosen.astype(bool)].itertuples():
        tags = client().get_run(row.cv_run_id).data.tags
        uri = f"models:/{tags['registered_model']}" if "registered_model" in tags else tags.get("model_uri")
        if uri:
            models[row.dataset] = uri
    if not models:
        raise RbpError(f"model {entry}: leaderboard run {run.info.run_name} chose no model with a logged model")
    return models


def expand_models(models: list[str]) -> list[str]:
    """What `rbp predict --model` was given, with each leaderboard run replaced by its chosen models."""
    out = []
    for model in models:
        out += list(leaderboard_models(model).values()) if re.fullmatch(r"leaderboard-\d{8}-\d{6}", model) \
            else [model]
    return out


def dataset_models(dataset: str) -> dict[str, str]:
    """Label -> URI of the latest registered version of each family trained on `dataset`."""
    found = {FAMILIES[family].label: latest_version(registered_name(dataset, family)) for family in FAMILIES}
    return {label: f"models:/{v.name}/{v.version}" for label, v in found.items() if v is not None}


def ensemble_members(params, folds, pipeline_run_id: str | None = None, device: str = "cpu") -> dict[str, FoldEnsemble]:
    """The models an ensemble combines: family name -> the FoldEnsemble its CV run logged, from the CV runs
    of `pipeline_run_id` (else of the data set's latest pipeline run) trained on these very folds and
    window length; `params.ensemble.members` names them, or every other family found."""
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
        return {name: FoldEnsemble.load(download(found[name].tags["model_uri"], Path(tmp) / name), device)
                for name in wanted}
