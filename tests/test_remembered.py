"""Remembered scores: an ensemble's members are not run again on sequences they scored, and nothing
changes in what is scored."""

import copy

import numpy as np
import pytest
import torch

from rbp import remembered
from rbp.cnn import CNNFamily, CNNParams
from rbp.ensemble import EnsembleFamily, EnsembleParams
from rbp.fold_ensemble import FoldEnsemble
from rbp.lstm import LSTMFamily, LSTMParams
from rbp.remembered import fingerprint, remembered_scores
from rbp.synthetic import make_transcript

WINDOW = 22
SEQUENCES = ["ACGTACGTTTGACAGGATTACA", "GGGCCCAAATTTGCATGCATGC", "TTTTTTTTAAAAACTGTAAATA", "ACGTACGTTTGACAG",
             "ACGTACGTTTGACAGGATTACA"]


def _predictor(family, seed: int, folds=(1, 2)) -> FoldEnsemble:
    torch.manual_seed(seed)
    return FoldEnsemble(family, None, [family.build().eval() for _ in folds], list(folds), window=WINDOW,
                        threshold=0.5, batch_size=4)


@pytest.fixture
def members():
    lstm = LSTMFamily(LSTMParams(embedding_dim=4, hidden_size=4, dense_size=4), k=3)
    cnn = CNNFamily(CNNParams(channels=[4], kernel_size=[5], dense_size=4), k=3)
    return {"lstm": _predictor(lstm, 0), "cnn": _predictor(cnn, 1)}


def _ensemble(members) -> FoldEnsemble:
    """The ensemble as a saved one is: fold models holding copies of the members' fold models."""
    family = EnsembleFamily(EnsembleParams(), 3, members)
    ensemble = FoldEnsemble(family, None, [family.combine(fold) for fold in (1, 2)], [1, 2], window=WINDOW,
                            threshold=0.5, batch_size=4)
    ensemble.models = [copy.deepcopy(model) for model in ensemble.models]
    return ensemble


def _count_runs(models) -> list:
    """Hooks counting the sequences each of `models` is run on."""
    runs = []
    for model in models:
        model.register_forward_hook(lambda module, args, kwargs, out: runs.append(len(out)), with_kwargs=True)
    return runs


def test_an_ensemble_scored_after_its_members_runs_no_member_again_and_scores_the_same(members):
    ensemble = _ensemble(members)
    expected = {(logits, fold): ensemble.probabilities(SEQUENCES, fold, logits=logits)
                for logits in (False, True) for fold in (None, 2)}
    expected_members = {name: p.probabilities(SEQUENCES) for name, p in members.items()}
    runs = _count_runs([*[m for p in members.values() for m in p.models],
                        *[m for model in ensemble.models for m in model.members.values()]])
    with remembered_scores():
        for name, predictor in members.items():
            np.testing.assert_allclose(predictor.probabilities(SEQUENCES), expected_members[name], atol=1e-6)
        assert sum(runs) == 2 * 2 * 4  # two members, two folds, four distinct sequences, once each
        runs.clear()
        for logits in (False, True):
            for fold in (None, 2):
                np.testing.assert_allclose(ensemble.probabilities(SEQUENCES, fold, logits=logits),
                                           expected[logits, fold], atol=1e-6)
        assert runs == []  # every member's fold model had scored every sequence
    assert not remembered.active()
    ensemble.probabilities(SEQUENCES)
    assert runs  # outside the block, scored as before


def test_a_long_sequence_scanned_in_one_pass_is_remembered_window_by_window(members):
    transcript = make_transcript(seed=3, length=400, sites=1)[0].sequence
    ensemble = _ensemble(members)
    expected = ensemble.window_scores(transcript)[1]
    cnn = members["cnn"]
    cnn.batch_size = 8  # fewer than the windows: the CNN scans the transcript in one pass
    with remembered_scores():
        cnn.window_scores(transcript)
        runs = _count_runs([model.members["cnn"] for model in ensemble.models])
        np.testing.assert_allclose(ensemble.window_scores(transcript)[1], expected, atol=1e-6)
        assert runs == []


def test_a_models_fingerprint_follows_its_weights(members):
    model = members["lstm"].models[0]
    twin = copy.deepcopy(model)
    assert fingerprint(twin) == fingerprint(model) != fingerprint(members["lstm"].models[1])
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    assert fingerprint(copy.deepcopy(twin)) != fingerprint(model)


def test_past_the_limit_sequences_are_scored_but_not_kept(members, monkeypatch):
    monkeypatch.setattr(remembered, "LIMIT", 3)
    lstm = members["lstm"]
    expected = lstm.probabilities(SEQUENCES)
    with remembered_scores():
        np.testing.assert_allclose(lstm.probabilities(SEQUENCES), expected, atol=1e-6)
        assert sum(map(len, remembered._remembered.values())) == 3
