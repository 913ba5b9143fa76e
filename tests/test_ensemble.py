"""The ensemble: the mean probability of its members' fold models, saved and loaded with them."""

import numpy as np
import pytest
import torch

from rbp.cnn import CNNFamily, CNNParams
from rbp.cv import run_fold
from rbp.data import folds_for
from rbp.ensemble import EnsembleFamily, EnsembleParams
from rbp.fold_ensemble import FoldEnsemble
from rbp.lstm import LSTMFamily, LSTMParams
from rbp.params import load_params
from rbp.train import predict

SEQUENCES = ["ACGTACGTTTGACAGGATTACA", "GGGCCCAAATTTGCATGCATGC", "TTTTTTTTAAAAACTGTAAATA"]


def _predictor(family, seed: int, folds=(1, 2)) -> FoldEnsemble:
    torch.manual_seed(seed)
    return FoldEnsemble(family, None, [family.build().eval() for _ in folds], list(folds), window=22, threshold=0.5)


@pytest.fixture
def members():
    lstm = LSTMFamily(LSTMParams(embedding_dim=4, hidden_size=4, dense_size=4), k=3)
    cnn = CNNFamily(CNNParams(channels=[4], kernel_size=[5], dense_size=4), k=3)
    return {"lstm": _predictor(lstm, 0), "cnn": _predictor(cnn, 1)}


def test_an_ensemble_of_identical_models_equals_each_model(members):
    lstm = members["lstm"]
    family = EnsembleFamily(EnsembleParams(), 3, {"lstm": lstm, "cnn": lstm})
    alone = predict(lstm.models[0], lstm.family.encode(SEQUENCES))
    together = predict(family.combine(1), family.encode(SEQUENCES))
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_an_ensemble_is_the_mean_probability_of_its_members(members):
    family = EnsembleFamily(EnsembleParams(), 3, members)
    expected = np.mean([predict(p.models[1], p.family.encode(SEQUENCES)) for p in members.values()], axis=0)
    np.testing.assert_allclose(predict(family.combine(2), family.encode(SEQUENCES)), expected, atol=1e-6)
    assert family.tags() == {"members": "lstm,cnn"} and family.k == 3


def test_a_saved_ensemble_brings_its_members(members, tmp_path):
    family = EnsembleFamily(EnsembleParams(), 3, members)
    model = family.combine(1)
    family.save(model, tmp_path / "fold-1")
    fresh = EnsembleFamily(EnsembleParams(), 3)
    loaded = fresh.load(tmp_path / "fold-1")
    assert list(fresh.members) == ["lstm", "cnn"]
    np.testing.assert_allclose(predict(loaded, fresh.encode(SEQUENCES)), predict(model, family.encode(SEQUENCES)),
                               atol=1e-6)


def test_a_fold_without_a_members_model_is_named(members):
    family = EnsembleFamily(EnsembleParams(), 3, members)
    with pytest.raises(Exception, match="fold 3 has no model of lstm, cnn"):
        family.combine(3)


def test_the_ensemble_is_evaluated_on_each_fold_like_any_model(members, small_data_dir, tmp_path):
    params = load_params(None, {"data_dir": str(small_data_dir), "folds": 2, "val_fraction": 0.3, "seed": 1})
    folds = folds_for(params, None, tmp_path / "run")
    family = EnsembleFamily(params.ensemble, 3, members)
    result = run_fold(family, folds, 2, params.ensemble, torch.device("cpu"), seed=0, progress=False)
    test = folds.sequences.iloc[folds.positions(2, "test")]
    expected = np.mean([p.probabilities(test.sequence.tolist(), fold=2) for p in members.values()], axis=0)
    np.testing.assert_allclose(result.predictions.probability, expected, atol=1e-6)
    assert len(result.val_predictions) == len(folds.positions(2, "dev")) and result.training.best_epoch == 1


def test_the_ensembles_validation_split_is_scored_once(members, small_data_dir, tmp_path, monkeypatch):
    """Fitting scores the split for its record; the fold's threshold comes from those same scores."""
    import rbp.cv

    params = load_params(None, {"data_dir": str(small_data_dir), "folds": 2, "val_fraction": 0.3, "seed": 1})
    folds = folds_for(params, None, tmp_path / "run")
    family = EnsembleFamily(params.ensemble, 3, members)
    scored = []
    monkeypatch.setattr(rbp.cv, "predict", lambda model, inputs, *a, **k: scored.append(len(inputs["lstm.input_ids"]))
                        or predict(model, inputs, *a, **k))
    result = run_fold(family, folds, 1, params.ensemble, torch.device("cpu"), seed=0, progress=False)
    assert scored == [len(folds.positions(1, "test"))]  # the test rows only: validation came from fitting
    dev = folds.sequences.iloc[folds.positions(1, "dev")]
    again = predict(family.combine(1), family.encode(dev.sequence.tolist()))
    np.testing.assert_array_equal(result.val_predictions.probability, again)
