"""bench/gpu_check.sh --tiny: the GPU check runs end to end, with the core of rbp only."""

import json
import os
import subprocess

import pytest

from tests.conftest import ROOT

BLOCKER = 'raise ImportError("{name} is not on the GPU machine")\n'


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_without_mlflow_or_papermill(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("mlflow", "papermill"):  # as on the GPU machine: importing either fails
        (blocked / f"{name}.py").write_text(BLOCKER.format(name=name))
    env = {**os.environ, "PYTHONPATH": str(blocked), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--tiny", "--out", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["tiny"] and report["mlflow_or_papermill_imported"] == []
    assert [(r["precision"], r["attention"]) for r in report["dnabert_step"]] == [("fp32", "eager"), ("fp32", "sdpa")]
    cv = report["cross_validation"]
    assert cv["folds"] == 2 and cv["init"] == "scratch" and len(cv["seconds_per_fold"]) == 2
    assert 0 <= cv["mean_test_auc"] <= 1 and cv["sequences"] == 120
    parts = cv["seconds_by_part"]  # where the folds' time went, every part that ran, and the rest
    assert {"build", "encode", "train epochs", "validation each epoch", "test and dev after training",
            "the rest"} == set(parts) and parts["train epochs"] > 0
    assert sum(parts.values()) == pytest.approx(cv["seconds_total"], abs=0.5)
    assert report["lstm"]["params"] == "paper" and report["lstm"]["epoch_seconds"] > 0
    assert [row["model"] for row in report["scan"]] == ["lstm (default), 2 folds", "lstm (paper), 2 folds",
                                                        "dnabert (default), 2 folds"]
    assert all(row["windows"] == 300 - 81 + 1 and row["windows_per_s"] > 0 for row in report["scan"])
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "--tiny" in table and "| test_auc |" in table


@pytest.mark.slow
def test_the_gpu_check_refuses_a_machine_without_a_gpu_unless_tiny(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--data", str(tmp_path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "torch sees no CUDA device" in done.stderr
    assert not (tmp_path / "out").exists()


def _gpu_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failing_part_of_the_gpu_check_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    check = _gpu_check_module()
    step = {"size": "small", "precision": "fp32", "attention": "eager", "step_ms": 1.0, "train_seq_per_s": 32.0,
            "tflops": 0.1}
    monkeypatch.setattr(check, "dnabert_step", lambda size, device, precision, attention, steps: dict(step))

    def no_cuda_left(*args):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(check, "cross_validation", no_cuda_left)
    monkeypatch.setattr(check, "lstm_epoch", lambda *args, **kwargs: {
        "params": "paper", "device": "cpu", "train_seq_per_s": 10.0, "epoch_seconds": 1.0, "eval_seq_per_s": 20.0})
    monkeypatch.setattr(check, "_predictor", lambda *args: None)
    monkeypatch.setattr(check, "scan_rate", lambda *args: {"windows": 220, "windows_per_s": 5.0, "nt_per_s": 6.0})
    monkeypatch.setattr("sys.argv", ["gpu_check.py", "--tiny", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="1 part\\(s\\) failed: cross_validation"):
        check.main()
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["failed"] == {"cross_validation": "RuntimeError: CUDA out of memory"}
    assert "cross_validation" not in report and report["lstm"]["epoch_seconds"] == 1.0 and len(report["scan"]) == 3
    table = (tmp_path / "gpu_check.md").read_text()
    assert "**cross_validation failed:** `RuntimeError: CUDA out of memory`" in table
    assert "| small | fp32 | eager |" in table and "| test_auc |" not in table and "windows/s" in table
