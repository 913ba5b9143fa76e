import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from rbp import tracking
from tests.conftest import ROOT

CREATE = "from rbp.tracking import use_experiment; print(use_experiment('pum2'))"


@pytest.mark.slow
def test_runs_started_side_by_side_share_a_new_store(tmp_path):
    """Several processes opening a store that does not exist yet: one creates it, all use it."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    procs = [subprocess.Popen([sys.executable, "-c", CREATE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    ids = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(ids) == 1
    assert [e.name for e in MlflowClient(tracking_uri=uri).search_experiments()].count("pum2") == 1


def test_experiments_keep_their_artifacts_beside_the_store(mlflow_store):
    experiment_id = tracking.use_experiment("synthetic")
    location = MlflowClient().get_experiment(experiment_id).artifact_location
    assert location == (mlflow_store / "artifacts").as_uri() + "/synthetic"
