"""A CV run becomes a deployable MLflow model: logged, registered, reloaded in a fresh process."""

import json
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from rbp import tracking
from rbp.cv import cross_validate
from rbp.data import Folds, prepare_folds
from rbp.errors import RbpError
from rbp.families import make_family
from rbp.fold_ensemble import choose_threshold
from rbp.params import load_params
from rbp.tracking import registry
from tests.conftest import ROOT


def test_the_threshold_maximises_youdens_j():
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    # at 0.7: 3 of 4 positives, no negative (J = 0.75); at 0.4: 4 of 4 and 1 of 4 (J = 0.75 too, later);
    # at 0.6: 3/4 and 1/4 (0.5). roc_curve visits 0.7 first.
    assert choose_threshold(labels, scores) == pytest.approx(0.7)
    with pytest.raises(RbpError, match="both classes"):
        choose_threshold([1, 1], [0.2, 0.3])


@pytest.fixture
def logged_cv(small_data_dir, tmp_path, mlflow_store):
    params = load_params(ROOT / "params" / "smoke.yaml", {"data_dir": str(small_data_dir), "dataset": "tiny"})
    prepare_folds(params, tmp_path / "run")
    folds = Folds(tmp_path / "run" / "folds")
    family = make_family("lstm", params)
    tracking.use_experiment(params.dataset_name)
    with tracking.CVLogger(family, folds, params.lstm, params) as logger:
        results = cross_validate(family, folds, params.lstm, torch.device("cpu"), params.seed, callbacks=[logger],
                                 progress=False)
    return logger, results, folds


@pytest.mark.slow
def test_the_cv_run_logs_and_registers_an_ensemble_that_reloads_elsewhere(logged_cv, tmp_path):
    logger, results, folds = logged_cv
    assert logger.model_version == "1" or logger.model_version == 1
    version = MlflowClient().get_model_version("tiny-lstm", "1")
    assert "Cross-validated test ROC AUC" in version.description and "Youden" in version.description
    assert "nan" not in version.description
    run = MlflowClient().get_run(logger.run_id)
    assert run.data.tags["registered_model"] == "tiny-lstm/1"
    assert 0 < run.data.metrics["decision_threshold"] < 1

    # a fresh process with the project's environment: each fold model reproduces its logged
    # out-of-fold predictions; the ensemble gives the mean
    oof = pd.concat([r.predictions for r in results]).merge(folds.sequences[["id", "sequence"]], on="id")
    oof.to_csv(tmp_path / "oof.csv", index=False)
    script = f"""
import json, mlflow.pyfunc, pandas as pd
oof = pd.read_csv({str(tmp_path / 'oof.csv')!r})
model = mlflow.pyfunc.load_model("models:/tiny-lstm/1")
out = {{}}
for fold, part in oof.groupby("fold"):
    got = model.predict(pd.DataFrame({{"sequence": part.sequence.str.lower().str.replace("t", "u")}}),
                        params={{"fold": int(fold)}})
    out[int(fold)] = float((got.probability - part.probability.to_numpy()).abs().max())
ensemble = model.predict(oof[["sequence"]].head(5))
out["columns"] = list(ensemble.columns)
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()})
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found.pop("columns") == ["probability", "call"]
    assert found and max(found.values()) < 1e-5, found


@pytest.mark.slow
def test_model_uris_and_names_resolve_to_the_same_predictor(logged_cv, tmp_path):
    logger, results, folds = logged_cv
    sequences = list(folds.sequences.sequence[:6])
    predictor, uri = tracking.load_model("tiny-lstm")
    assert uri == "models:/tiny-lstm/1"
    expected = predictor.probabilities(sequences)
    by_fold = [predictor.probabilities(sequences, fold=r.fold) for r in results]
    assert np.allclose(expected, np.mean(by_fold, axis=0), atol=1e-6)  # the ensemble is the folds' mean
    for name in ("models:/tiny-lstm/1", "tiny", f"runs:/{logger.run_id}/model", logger.model_uri):
        again, _ = tracking.load_model(name)
        assert np.allclose(again.probabilities(sequences), expected, atol=1e-6), name
    assert registry.resolve_uri("tiny") == "models:/tiny-lstm/1"
    with pytest.raises(RbpError, match="model 'nothing': no registered model or data set of that name; "
                                       "registered: tiny-lstm"):
        tracking.load_model("nothing")
    with pytest.raises(RbpError, match="model models:/tiny-lstm/7: cannot be loaded"):
        tracking.load_model("models:/tiny-lstm/7")


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_rest_request(logged_cv, tmp_path):
    import os
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # as from an activated environment: the server starts the environment's uvicorn
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/tiny-lstm/1",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"))
    body = json.dumps({"dataframe_split": {"columns": ["sequence"], "data": [["acgu" * 20 + "a"], ["UGUAAAUA" * 10]]}})
    try:
        deadline, answer = time.time() + 180, None
        while time.time() < deadline and answer is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body.encode(),
                                                 {"Content-Type": "application/json"})
                answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
                time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answer is not None, (tmp_path / "serve.log").read_text()[-2000:]
    rows = answer["predictions"]
    assert [sorted(row) for row in rows] == [["call", "probability"]] * 2
    assert all(0 <= row["probability"] <= 1 and row["call"] in (0, 1) for row in rows)


@pytest.mark.slow
def test_the_predict_notebook_on_its_own_applies_the_data_sets_latest_models(logged_cv, tmp_path):
    import os

    import papermill

    from rbp.pipeline import KERNEL_ARGUMENTS
    from rbp.synthetic import write_transcript

    def run_notebook(**predict):
        papermill.execute_notebook(str(ROOT / "notebooks" / "06_predict.ipynb"), str(tmp_path / "06.ipynb"),
                                   parameters={"dataset": "tiny", "run_dir": str(tmp_path / "run"),
                                               "predict": {"stride": 1, **predict}},
                                   kernel_name="python3", cwd=str(ROOT), progress_bar=False,
                                   extra_arguments=KERNEL_ARGUMENTS)

    # the models learned from a data folder (real data, as far as rbp knows): a synthetic transcript is refused
    with pytest.raises(papermill.PapermillExecutionError, match=r"predict\.fasta: not given, and LSTM \(tiny\)"):
        run_notebook()
    write_transcript(tmp_path / "transcripts.fa", seed=4)
    run_notebook(fasta=str(tmp_path / "transcripts.fa"))
    summary = (tmp_path / "run" / "predict" / "summary.txt").read_text()
    assert summary.startswith("LSTM: 1 sequences, 4920 windows") and "planted" not in summary
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("tiny").experiment_id],
                                      "tags.mlflow.runName = 'predict'")
    assert len(runs) == 1 and runs[0].data.params["model.lstm"] == "models:/tiny-lstm/1"
    assert os.path.isfile(tmp_path / "run" / "predict" / "lstm" / "sites.bed")
