"""Shared fixtures. A test that logs asks for `mlflow_store` (a temporary store, copied from one
migrated template); no test can reach the user's mlruns/: the session points MLflow at a scratch
store first. Tests marked `slow` (papermill, subprocesses) are left out by `make test-quick`.

`make test` runs the tests in worker processes side by side (pytest-xdist, one per core): each worker
and what it starts uses one thread, the slow tests are handed out first, and a module whose tests
share a trained model keeps them in one worker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# A model-hub name must fail at once instead of hanging: no test may reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):  # workers side by side: one thread each, or they slow each other
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

# Modules whose tests share a costly module-scoped fixture (trained models, a server): one worker each.
SHARED_FIXTURES = {"test_demo", "test_workflow"}

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """The slow tests first (the longest module first), so that no worker is left with a long test
    at the end; the modules of SHARED_FIXTURES each as one group of work."""
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SHARED_FIXTURES:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    first = ("test_workflow", "test_pipeline", "test_resume", "test_demo")

    def rank(item):
        module = item.module.__name__.rsplit(".", 1)[-1]
        return (item.get_closest_marker("slow") is None, first.index(module) if module in first else len(first))

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def _never_the_users_store(tmp_path_factory):
    """Without `mlflow_store`, anything that logs by mistake lands in a scratch store, not in mlruns/.
    Setting the variable costs nothing: no store is created unless something logs."""
    scratch = tmp_path_factory.mktemp("stray-mlflow") / "mlflow.db"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}"
    yield
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture(scope="session")
def _migrated_db(tmp_path_factory) -> Path:
    """Creating a sqlite store runs its migrations (seconds): do it once, copy it per test."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, _migrated_db) -> Path:
    """A fresh MLflow store for one test, made the active one."""
    import mlflow

    store = tmp_path / "mlruns"
    store.mkdir()
    shutil.copy(_migrated_db, store / "mlflow.db")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield store
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def write_fasta_text(tmp_path):
    """Write text (or bytes) to a file in tmp_path and return its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return write


@pytest.fixture
def pum2_dir() -> Path:
    """The real PUM2 folder, found through RBP_PUM2_DIR (set by .ci/run); skipped when unset."""
    value = os.environ.get("RBP_PUM2_DIR")
    if not value:
        pytest.skip("RBP_PUM2_DIR is not set: the PUM2 data set is not available here")
    return Path(value)


def saved_cv_model(root: Path, family_name: str, n_per_class: int, seed: int, info: dict,
                   overrides: dict | None = None) -> Path:
    """A fold ensemble of `family_name` cross-validated (smoke settings, 2 folds, `overrides` on top)
    on `make_synthetic(seed, n_per_class)` under `root`, saved as a model folder; returns the folder."""
    import torch

    from rbp.cv import cross_validate
    from rbp.data import Folds, prepare_folds
    from rbp.families import make_family
    from rbp.fasta import write_fasta
    from rbp.fold_ensemble import from_cross_validation
    from rbp.params import load_params
    from rbp.synthetic import make_synthetic

    positives, negatives = make_synthetic(seed=seed, n_per_class=n_per_class)
    write_fasta(root / "positives.fa", positives, rna=True)
    write_fasta(root / "negatives.fa", negatives, rna=True)
    params = load_params(ROOT / "params" / "smoke.yaml", {"data_dir": str(root), "dataset": info["dataset"],
                                                         **(overrides or {})})
    prepare_folds(params, root / "run")
    folds = Folds(root / "run" / "folds")
    family = make_family(family_name, params)
    results = cross_validate(family, folds, getattr(params, family_name), torch.device("cpu"), params.seed,
                             progress=False)
    return from_cross_validation(family, params, folds, results, info).save(root / "model")


@pytest.fixture
def small_data_dir(tmp_path) -> Path:
    """A small labelled set (60 + 60 synthetic sequences of 81 nt) as two FASTA files."""
    from rbp.fasta import write_fasta
    from rbp.synthetic import make_synthetic

    directory = tmp_path / "small"
    directory.mkdir()
    positives, negatives = make_synthetic(seed=3, n_per_class=60)
    write_fasta(directory / "positives.fa", positives, rna=True)
    write_fasta(directory / "negatives.fa", negatives, rna=True)
    return directory
