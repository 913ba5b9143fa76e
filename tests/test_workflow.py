"""Beyond one process: a tracking server, fold jobs logging to it side by side, the Snakemake workflow."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from rbp import workflow, workflow_config
from rbp.errors import RbpError
from rbp.synthetic import write_planted
from tests.conftest import ROOT

SMOKE = ROOT / "params" / "smoke.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`rbp server` over a fresh store, bound to 127.0.0.1; yields its URI once it answers."""
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "rbp", "server", "--port", str(port), "--workers", "2",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # it answers in 10 to 60 s on these machines
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the tracking server did not answer: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(2)
    yield uri
    os.killpg(process.pid, 15)
    process.wait(30)


@pytest.fixture
def on_server(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    mlflow.set_tracking_uri(server)
    yield server
    while mlflow.active_run():
        mlflow.end_run()


FOLD_JOB = textwrap.dedent("""
    import sys
    import torch
    from rbp import tracking
    from rbp.cv import cross_validate
    from rbp.data import Folds
    from rbp.families import make_family
    from rbp.params import load_params

    params_file, data_dir, folds_dir, parent, fold = sys.argv[1:]
    params = load_params(params_file, {"data_dir": data_dir, "dataset": "busy", "folds": 4,
                                       "lstm": {"max_epochs": 4, "patience": 4}})
    folds = Folds(folds_dir)
    tracking.use_experiment("busy")
    family = make_family("lstm", params)
    with tracking.CVLogger(family, folds, params.lstm, params, parent, fold=int(fold)) as logger:
        cross_validate(family, folds, params.lstm, torch.device("cpu"), params.seed, callbacks=[logger],
                       progress=False, only=logger.pending, kept=logger.kept)
""")


@pytest.mark.slow
def test_four_fold_jobs_log_side_by_side_to_one_server_and_nothing_is_lost(on_server, small_data_dir, tmp_path):
    from rbp import tracking
    from rbp.data import Folds, prepare_folds
    from rbp.families import make_family
    from rbp.params import load_params

    overrides = {"data_dir": str(small_data_dir), "dataset": "busy", "folds": 4,
                 "lstm": {"max_epochs": 4, "patience": 4}}
    params = load_params(SMOKE, overrides)
    prepare_folds(params, tmp_path / "run")
    folds = Folds(tmp_path / "run" / "folds")
    experiment_id = tracking.use_experiment("busy")
    client = MlflowClient()
    parent = client.create_run(experiment_id, run_name="pipe", tags={"model_family": "pipeline"}).info.run_id
    family = make_family("lstm", params)
    cv_run_id = tracking.CVLogger(family, folds, params.lstm, params, parent).open()

    script = tmp_path / "fold_job.py"
    script.write_text(FOLD_JOB)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": on_server}
    jobs = [subprocess.Popen([sys.executable, str(script), str(SMOKE), str(small_data_dir), str(folds.dir), parent,
                              str(fold)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for fold in (1, 2, 3, 4)]
    outputs = [job.communicate(timeout=600)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0, 0], outputs

    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{cv_run_id}'")
    assert sorted((int(r.data.tags["fold"]), r.info.status) for r in runs) == [(f, "FINISHED") for f in (1, 2, 3, 4)]
    for run in runs:
        run_id = run.info.run_id
        epochs = len(client.get_metric_history(run_id, "val_auc"))
        assert epochs >= 1
        for metric in ("train_loss", "val_loss", "lr", "epoch_seconds"):  # every epoch's figure arrived
            assert len(client.get_metric_history(run_id, metric)) == epochs, metric
        assert {"test_auc", "test_mcc", "best_val_auc", "best_epoch", "fold_seconds"} <= set(run.data.metrics)
        artifacts = {item.path for item in client.list_artifacts(run_id)}
        assert {"predictions.csv", "val_predictions.csv", "checkpoint"} <= artifacts
        assert [item.path for item in client.list_artifacts(run_id, "checkpoint")] == ["checkpoint/model.pt"]
        assert len(run.data.params) == len(tracking.CVLogger(family, folds, params.lstm, params).params)

    # the gather step, here in-process: all four folds kept, the CV run summarised and its model registered
    from rbp.cv import cross_validate

    with tracking.CVLogger(family, folds, params.lstm, params, parent) as logger:
        results = cross_validate(family, folds, params.lstm, "cpu", params.seed, callbacks=[logger], progress=False,
                                 only=logger.pending, kept=logger.kept)
    assert logger.pending == [] and [r.fold for r in results] == [1, 2, 3, 4]
    cv = client.get_run(cv_run_id)
    assert cv.info.status == "FINISHED" and cv.data.metrics["n_folds"] == 4
    fold_aucs = sorted(r.data.metrics["test_auc"] for r in runs)
    assert cv.data.metrics["mean_test_auc"] == pytest.approx(sum(fold_aucs) / 4)
    assert client.get_model_version("busy-lstm", "1").run_id == cv_run_id


DATASET = "rbfox-synthetic"  # a data folder, as a user's; the Snakefile's fan-out to several is the dry run's test


def _config(tmp_path, planted_dir) -> dict:
    notebooks = ["01_preprocess", "03_kmer_lr_cv", "04_compare"]  # the fastest model: the jobs are what is tested
    return {"out": str(tmp_path / "targets"), "threads": 1, "datasets": {
        DATASET: {"params": str(SMOKE), "set": {"data_dir": str(planted_dir), "notebooks": notebooks,
                                                "output_dir": str(tmp_path / "outputs")}}}}


def _snakemake(config_file, *args, env=None, timeout=1200):
    return subprocess.run([sys.executable, "-m", "snakemake", "--configfile", str(config_file), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_workflow_runs_a_data_set_fold_by_fold_against_a_server_and_resumes(on_server, tmp_path):
    planted = tmp_path / DATASET
    write_planted(planted, n_per_class=150)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, planted)))
    env = {**os.environ, "MLFLOW_TRACKING_URI": on_server}
    done = _snakemake(config, "--cores", "2", env=env)  # the two fold jobs side by side
    assert done.returncode == 0, done.stderr[-4000:]

    client = MlflowClient()
    target = json.loads((tmp_path / "targets" / DATASET / "pipeline.json").read_text())
    experiment = client.get_experiment_by_name(DATASET)
    pipelines = client.search_runs([experiment.experiment_id], "tags.model_family = 'pipeline'")
    assert [run.info.run_id for run in pipelines] == [target["run_id"]]  # one pipeline run per data set
    pipeline = pipelines[0]
    assert pipeline.info.status == "FINISHED"
    assert "**Verdict.**" in pipeline.data.tags["mlflow.note.content"]  # the compare step ran
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{target['run_id']}'")
    cv_runs = {run.info.run_name: run for run in children if run.info.run_name.endswith("_cv")}
    assert sorted(cv_runs) == ["kmer_lr_cv"]
    cv = cv_runs["kmer_lr_cv"]
    assert cv.info.status == "FINISHED" and cv.data.metrics["n_folds"] == 2 and cv.data.tags["model_uri"]
    folds = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{cv.info.run_id}'")
    assert sorted(run.data.tags["fold"] for run in folds) == ["1", "2"]
    board = json.loads((tmp_path / "targets" / "leaderboard.json").read_text())
    leaderboard = client.get_run(board["run_id"])
    assert leaderboard.data.tags["model_family"] == "leaderboard"
    assert {item.path for item in client.list_artifacts(board["run_id"])} >= {"leaderboard.csv"}
    # every job's wall time and memory, in Snakemake's benchmark files
    timings = tmp_path / "targets" / "benchmarks"
    assert sorted(path.relative_to(timings).as_posix() for path in timings.rglob("*.tsv")) == sorted([
        f"{DATASET}/{job}.tsv" for job in ("compare", "kmer_lr-fold-1", "kmer_lr-fold-2", "kmer_lr-gather", "open")
    ] + ["leaderboard.tsv"])
    seconds = float((timings / DATASET / "kmer_lr-fold-1.tsv").read_text().splitlines()[1].split("\t")[0])
    assert 0 < seconds < 1200

    again = _snakemake(config, "--cores", "2", env=env)  # everything is complete: nothing runs
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # a fold's target lost: the job runs, finds the fold FINISHED in MLflow and trains nothing
    (tmp_path / "targets" / DATASET / "kmer_lr" / "fold-1.json").unlink()
    before = len(folds)
    redo = _snakemake(config, "--cores", "1", str(tmp_path / "targets" / DATASET / "kmer_lr" / "fold-1.json"), env=env)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert "finished before, kept" in redo.stdout + redo.stderr
    after = len(client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{cv.info.run_id}'"))
    assert after == before


@pytest.mark.slow
def test_the_slurm_profile_sends_every_fold_as_a_job_and_dnabert_folds_to_a_gpu(tmp_path):
    config = tmp_path / "config.yaml"
    notebooks = ["01_preprocess", "02_dnabert_cv", "03_lstm_cv", "04_compare"]
    config.write_text(yaml.safe_dump({"out": str(tmp_path / "targets"), "datasets": {
        "a": {"params": str(SMOKE), "set": {"notebooks": notebooks, "folds": 3}},
        "b": {"params": str(SMOKE), "set": {"notebooks": notebooks, "folds": 3}}}}))
    dry = _snakemake(config, "-n", "--workflow-profile", "workflow/profiles/slurm", timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    text = dry.stdout + dry.stderr
    counts = dict(line.split() for line in text.split("Job stats:")[1].splitlines()[3:9] if line.strip())
    # per data set: open, 2 models x 3 folds, 2 gathers, compare; then the leaderboard
    assert counts == {"open_run": "2", "fold": "12", "gather": "4", "compare": "2", "leaderboard": "1", "all": "1"}
    jobs = [block for block in text.split("rule fold:")[1:]]
    gpus = {("dnabert" in block.split("wildcards:")[1].splitlines()[0], "gpu=1" in block) for block in jobs}
    assert gpus == {(True, True), (False, False)}
    assert all("runtime=480" in block and "mem_mb=32000" in block for block in jobs)


def test_a_workflow_step_names_what_it_cannot_do(tmp_path):
    record = {"run_id": "0" * 32, "run_name": "x", "run_dir": str(tmp_path), "dataset": "x", "experiment_id": "1",
              "params": yaml.safe_load(SMOKE.read_text())}
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(record))
    with pytest.raises(RbpError, match="06_predict is not a workflow step"):
        workflow.run_step(run_file, "06_predict", tmp_path / "out.json")
    with pytest.raises(RbpError, match="04_compare is not a model notebook"):
        workflow.run_step(run_file, "04_compare", tmp_path / "out.json", fold=1)
    with pytest.raises(RbpError, match="not a pipeline run written by `rbp workflow open`"):
        workflow.run_step(tmp_path / "missing.json", "03_lstm_cv", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_the_cli_refuses_what_it_cannot_do(capsys):
    from rbp.cli import main

    assert main(["server", "--backend-store-uri", "postgresql://db/mlflow"]) == 2
    assert "--artifacts-destination: give where the server keeps artifacts" in capsys.readouterr().err
    assert main(["run", "--resume", "pum2-20261129-012256", "--params", "params/best.yaml"]) == 2
    assert "--resume reruns a pipeline run with the params it was started with" in capsys.readouterr().err


def test_a_collection_makes_a_data_set_of_every_subfolder_holding_the_files(tmp_path, monkeypatch):
    for name in ("10_PARCLIP_C", "2_PARCLIP_A", "4_ICLIP_B", "incomplete", ".hidden"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.fa.gz").write_bytes(b"")
        if name != "incomplete":
            (tmp_path / name / "test.fa.gz").write_bytes(b"")
    monkeypatch.setenv("SETS_DIR", str(tmp_path))
    spec = {"dir": "$SETS_DIR", "params": "params/rbp31.yaml", "set": {"labelled": "train.fa.gz",
                                                                      "test_set": "test.fa.gz"}}
    found = workflow_config.collection_datasets(spec)
    assert list(found) == ["2_PARCLIP_A", "4_ICLIP_B", "10_PARCLIP_C"]  # numbers by value: the leaderboard's order
    assert found["4_ICLIP_B"] == {"params": "params/rbp31.yaml", "set": {
        "labelled": "train.fa.gz", "test_set": "test.fa.gz", "data_dir": str(tmp_path / "4_ICLIP_B")}}
    assert list(workflow_config.collection_datasets({**spec, "only": ["4_ICLIP_B"]})) == ["4_ICLIP_B"]
    with pytest.raises(RbpError, match=r"collection.only names incomplete, not a data set of .* \(each needs "
                                       "train.fa.gz, test.fa.gz"):
        workflow_config.collection_datasets({**spec, "only": ["incomplete"]})
    monkeypatch.delenv("SETS_DIR")
    with pytest.raises(RbpError, match=r"collection.dir \$SETS_DIR: an environment variable in it is not set"):
        workflow_config.collection_datasets(spec)
    with pytest.raises(RbpError, match="no subfolder of .* holds positives.fa, negatives.fa"):
        workflow_config.collection_datasets({"dir": str(tmp_path)})
    with pytest.raises(RbpError, match="collection has an unknown key sets"):
        workflow_config.collection_datasets({"dir": str(tmp_path), "sets": []})


def test_the_benchmark_workflow_interprets_each_set_after_comparing_it():
    from rbp.params import load_params

    params = load_params(ROOT / "params" / "rbp31.yaml")
    assert workflow_config.workflow_steps(params) == ["01_preprocess", "02_dnabert_cv", "03_cnn_cv", "03_kmer_lr_cv",
                                               "03_lstm_cv", "03_ensemble_cv", "04_compare", "07_interpret"]
    assert params.folds == 0 and params.ambiguous == "keep"  # a fixed test set, scored whole
    snakefile = (ROOT / "workflow" / "Snakefile").read_text()
    assert 'for step in ("04_compare", "07_interpret") if step in PARAMS[w.dataset].notebooks' in snakefile


def test_a_step_given_a_json_file_that_is_not_an_open_run_is_refused(tmp_path, capsys):
    from rbp.cli import main

    target = tmp_path / "run.json"
    target.write_text(json.dumps({"run_id": "abc"}))
    assert main(["workflow", "step", str(target), "--notebook", "03_cnn_cv", "--out", str(tmp_path / "o.json")]) == 2
    assert "(no run_name, run_dir, dataset, params); give the run.json that `rbp workflow open --out` wrote" in \
        capsys.readouterr().err
    assert main(["workflow", "close", str(target), "--out", str(tmp_path / "o.json")]) == 2
    assert not (tmp_path / "o.json").exists()
