"""DNABERT's own protocol (`params/dnabert_parity.yaml`): the whole training part, the final epoch, no selection."""

import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from rbp import cv, tracking
from rbp.data import Folds, prepare_folds
from rbp.families import make_family
from rbp.params import load_params
from rbp.records import model_label
from tests.conftest import ROOT
from tests.dnabert_layout import write_dnabert_checkpoint

PARITY = ROOT / "params" / "dnabert_parity.yaml"


def test_the_parity_recipe_is_dnaberts_own():
    p = load_params(PARITY, ["dnabert.checkpoint=/x/dnabert-3"])
    d = p.dnabert
    assert (p.k, p.folds, p.seed) == (3, 5, 42)
    assert (d.selection, d.amp, d.init, d.batch_size, d.max_epochs) == ("final", False, "pretrained", 32, 5)
    assert (d.optimizer, d.lr, d.weight_decay, d.schedule, d.warmup_fraction, d.grad_clip) == (
        "adamw", 2e-4, 0.01, "linear", 0.1, 1.0)
    assert load_params().dnabert.selection == "validation"  # the default stays honest selection


@pytest.mark.usefixtures("mlflow_store")
def test_parity_trains_on_train_and_dev_keeps_the_last_epoch_and_says_so(small_data_dir, tmp_path, monkeypatch):
    checkpoint = write_dnabert_checkpoint(tmp_path / "dnabert-3", k=3, hidden=16, layers=1, heads=2)
    params = load_params(PARITY, {"data_dir": str(small_data_dir), "dataset": "small", "folds": 2,
                                  "dnabert": {"checkpoint": str(checkpoint), "max_epochs": 2, "batch_size": 64}})
    prepare_folds(params, tmp_path / "run")
    folds = Folds(tmp_path / "run" / "folds")
    family = make_family("dnabert", params)
    seen = []
    train_model = cv.train_model

    def spy(model, train, train_labels, dev, dev_labels, *args, **kwargs):
        seen.append((len(train_labels), dev, dev_labels))
        return train_model(model, train, train_labels, dev, dev_labels, *args, **kwargs)

    monkeypatch.setattr(cv, "train_model", spy)
    tracking.use_experiment("small")
    with tracking.CVLogger(family, folds, params.dnabert, params) as logger:
        results = cv.cross_validate(family, folds, params.dnabert, torch.device("cpu"), params.seed,
                                    callbacks=[logger], progress=False)

    for fold, (n_train, dev, dev_labels) in zip(folds.fold_numbers, seen, strict=True):
        assert n_train == len(folds.positions(fold, "train")) + len(folds.positions(fold, "dev"))
        assert dev is None and dev_labels is None
    for result in results:
        assert result.best_epoch == 2 and len(result.training.history) == 2  # no early stop, the final epoch
        assert math.isnan(result.training.best_val_auc) and result.val_predictions is None
        assert not math.isnan(result.metrics["test_auc"]) and "test_f1_macro" in result.metrics

    client = MlflowClient()
    cv_run = client.get_run(logger.run_id)
    assert cv_run.data.tags["selection"] == "final" and cv_run.data.tags["init"] == "pretrained"
    assert model_label(cv_run.data.tags) == "DNABERT (pretrained, parity (no selection))"
    assert "mean_test_auc" in cv_run.data.metrics and "mean_best_val_auc" not in cv_run.data.metrics
    assert cv_run.data.params["dnabert.selection"] == "final" and cv_run.data.params["dnabert.amp"] == "False"
    assert cv_run.data.metrics["decision_threshold"] == 0.5
    fold_runs = client.search_runs([cv_run.info.experiment_id], f"tags.mlflow.parentRunId = '{logger.run_id}'")
    for fold_run in fold_runs:
        assert fold_run.data.metrics["best_epoch"] == 2 and "best_val_auc" not in fold_run.data.metrics
        assert [m.step for m in client.get_metric_history(fold_run.info.run_id, "train_loss")] == [1, 2]
        assert client.get_metric_history(fold_run.info.run_id, "val_auc") == []
    predictor, _ = tracking.load_model(logger.model_uri, device="cpu")
    assert predictor.threshold == 0.5 and "selection: final" in predictor.threshold_criterion
