import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from rbp import tracking
from rbp.cli import main
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


def test_runs_of_a_dead_process_are_marked_killed_and_live_ones_kept(mlflow_store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    experiment_id = tracking.use_experiment("pum2")
    client = MlflowClient()
    orphan = client.create_run(experiment_id, run_name="orphan",
                               tags={**tracking.process_tags(), "pid": str(dead.pid), "process_start": ""})
    alive = client.create_run(experiment_id, run_name="alive", tags=tracking.process_tags())
    elsewhere = client.create_run(experiment_id, run_name="elsewhere",
                                  tags={**tracking.process_tags(), "host": "another-host", "pid": str(dead.pid)})
    lines = []
    assert tracking.close_stale_runs(lines.append) == ["orphan"]
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"
    assert lines == ["marked KILLED 1 run(s) whose process had died without ending them: orphan"]


@pytest.mark.slow
def test_a_pipeline_killed_with_sigkill_is_marked_killed_by_the_next_start(mlflow_store, small_data_dir, tmp_path):
    import signal
    import time

    cmd = [sys.executable, "-m", "rbp", "run", "--params", str(ROOT / "params" / "smoke.yaml"),
           "-p", f"data_dir={small_data_dir}", "-p", f"output_dir={tmp_path / 'out'}"]
    job = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    client = MlflowClient()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # until a notebook kernel has opened a run of its own
        experiment = client.get_experiment_by_name("small")
        names = [r.info.run_name for r in client.search_runs([experiment.experiment_id])] if experiment else []
        if any(name in ("preprocess", "dnabert_cv", "lstm_cv") for name in names):
            break
        time.sleep(0.5)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and its notebook kernel, as the OOM killer would
    job.wait()
    runs = client.search_runs([experiment.experiment_id])
    assert "RUNNING" in [r.info.status for r in runs]
    pids = {int(r.data.tags["pid"]) for r in runs if r.info.status == "RUNNING"}
    deadline = time.monotonic() + 60  # a notebook kernel outside the group exits once its parent is gone
    while time.monotonic() < deadline and any(_exists(pid) for pid in pids):
        time.sleep(0.5)
    closed = tracking.close_stale_runs(lambda line: None)
    runs = client.search_runs([experiment.experiment_id])
    assert closed and "RUNNING" not in [r.info.status for r in runs]
    assert {r.info.run_name for r in runs if r.info.status == "KILLED"} == set(closed)


def test_the_cli_cleans_stale_runs(mlflow_store, capsys):
    from rbp.cli import main

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    experiment_id = tracking.use_experiment("pum2")
    run = MlflowClient().create_run(experiment_id, run_name="fold-3",
                                    tags={**tracking.process_tags(), "pid": str(dead.pid), "process_start": ""})
    assert main(["runs", "--clean-stale"]) == 0
    assert "marked KILLED 1 run(s) whose process had died without ending them: fold-3" in capsys.readouterr().out
    assert MlflowClient().get_run(run.info.run_id).info.status == "KILLED"
    assert main(["runs", "--clean-stale"]) == 0
    assert "no run left RUNNING" in capsys.readouterr().out


def _exists(pid: int) -> bool:
    return tracking.lifecycle._alive({"pid": str(pid)})


def test_a_server_on_a_port_in_use_is_refused_and_one_open_to_all_is_warned_about(capsys):
    import socket

    from rbp.cli import _check_listen

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["server", "--port", str(port)]) == 2
        assert main(["ui", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in err and "give another --port" in err
    _check_listen("0.0.0.0", 0)  # a free port: no error, a warning
    assert "has no authentication" in capsys.readouterr().err
    _check_listen("127.0.0.1", 0)
    assert capsys.readouterr().err == ""


def test_a_leaderboard_of_an_unknown_run_is_refused_before_anything_is_made(mlflow_store, tmp_path, capsys):
    assert main(["leaderboard", "no-such-run", "--output-dir", str(tmp_path / "out")]) == 2
    assert "'no-such-run' is neither the id nor the name of a pipeline run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_mlflow_telemetry_is_off_unless_a_user_turns_it_on():
    """Offline, MLflow's telemetry thread takes its variable out of os.environ while a request reads the
    environment, and the request fails; rbp turns it off by default and keeps a user's own choice."""
    import os
    import subprocess
    import sys

    script = ("import rbp, mlflow.telemetry.utils as t, os; "
              "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], t.MLFLOW_DISABLE_TELEMETRY.get())")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    off = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert off.stdout.split() == ["true", "True"]
    kept = subprocess.run([sys.executable, "-c", script], env={**env, "MLFLOW_DISABLE_TELEMETRY": "false"},
                          capture_output=True, text=True, check=True)
    assert kept.stdout.split() == ["false", "False"]


def test_a_data_set_logged_by_two_runs_at_once_is_logged_by_both(mlflow_store, small_data_dir, tmp_path, monkeypatch):
    """Models trained side by side log the same data set as their CV runs open: the store looks for it, then
    inserts it, so the run that loses the race fails on the store's unique key; it is logged the second time.
    Any other failure is raised."""
    from mlflow.exceptions import MlflowException

    from rbp.data import Folds, prepare_folds
    from rbp.params import load_params
    from rbp.tracking.stages import log_dataset

    params = load_params(ROOT / "params" / "smoke.yaml", {"data_dir": str(small_data_dir)})
    prepare_folds(params, tmp_path / "run")
    folds = Folds(tmp_path / "run" / "folds")
    client = MlflowClient()
    experiment_id = tracking.use_experiment("small")
    first, second = (client.create_run(experiment_id).info.run_id for _ in range(2))
    real, calls = MlflowClient.log_inputs, []

    def racing(self, run_id, datasets=None, models=None):
        calls.append(run_id)
        if len(calls) == 2:  # the other run inserted it between the second run's look and its insert
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
                                  "datasets.name, datasets.digest")
        return real(self, run_id, datasets=datasets, models=models)

    monkeypatch.setattr(MlflowClient, "log_inputs", racing)
    log_dataset(folds, "small", first)
    log_dataset(folds, "small", second)
    assert calls == [first, second, second]
    for run_id in (first, second):
        (logged,) = client.get_run(run_id).inputs.dataset_inputs
        assert logged.dataset.name == "small" and logged.dataset.digest == folds.manifest["data_sha256"][:12]

    def broken(self, run_id, datasets=None, models=None):
        calls.append(run_id)
        raise MlflowException("the store is gone")

    calls.clear()
    monkeypatch.setattr(MlflowClient, "log_inputs", broken)
    with pytest.raises(MlflowException, match="the store is gone"):
        log_dataset(folds, "small", first)
    assert calls == [first, first]
