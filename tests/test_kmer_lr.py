"""The k-mer logistic regression: exact features, and a regularisation chosen without the test fold."""

import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from rbp.cv import run_fold
from rbp.data import folds_for
from rbp.kmer_lr import KmerLRFamily, KmerLRParams, kmer_spectrum
from rbp.kmers import kmer_counts, kmer_vocab
from rbp.params import load_params
from rbp.train import predict


def test_kmer_counts_are_exact_on_a_hand_made_sequence():
    counts = kmer_counts(["AATNAAT"], 2)[0]
    vocab = kmer_vocab(3)  # the order of k-mers is the vocabulary's: A, T, C, G
    order = ["".join(p) for p in __import__("itertools").product("ATCG", repeat=2)]
    assert {order[i]: int(c) for i, c in enumerate(counts) if c} == {"AA": 2, "AT": 2}
    assert vocab[5:9] == ("AAA", "AAT", "AAC", "AAG")


def test_the_spectrum_is_each_ks_frequencies():
    spectrum = kmer_spectrum(["ACGTA"], 1, 2)[0]
    ones, twos = spectrum[:4], spectrum[4:]
    assert ones.tolist() == pytest.approx([0.4, 0.2, 0.2, 0.2])  # A T C G
    assert twos.sum() == pytest.approx(1.0) and (twos > 0).sum() == 4  # AC CG GT TA, a quarter each


@pytest.fixture
def folds(small_data_dir, tmp_path):
    params = load_params(None, {"data_dir": str(small_data_dir), "folds": 3, "val_fraction": 0.3, "seed": 1})
    return folds_for(params, None, tmp_path / "run")


def test_the_regression_is_the_fitted_one_as_a_torch_model(folds):
    family = KmerLRFamily(KmerLRParams(k_min=1, k_max=3, c_grid=[0.1]), k=3)
    result = run_fold(family, folds, 1, family.params, torch.device("cpu"), seed=0, progress=False)
    test = folds.sequences.iloc[folds.positions(1, "test")]
    assert result.metrics["test_auc"] == pytest.approx(roc_auc_score(test.label, result.predictions.probability))
    assert result.training.selected == {"C": 0.1} and result.training.best_epoch == 1


def test_the_strength_is_chosen_on_validation_and_never_on_the_test_fold(folds):
    """Scramble the test fold (labels flipped, sequences replaced): what is chosen and fitted must not move."""
    family = KmerLRFamily(KmerLRParams(k_min=1, k_max=4, c_grid=[1e-4, 1e-2, 1.0, 100.0]), k=3)
    device = torch.device("cpu")
    first = run_fold(family, folds, 1, family.params, device, seed=0, progress=False)

    scrambled = copy.copy(folds)
    scrambled.sequences = folds.sequences.copy()
    rows = folds.positions(1, "test")
    scrambled.sequences.loc[rows, "label"] = 1 - scrambled.sequences.loc[rows, "label"]
    scrambled.sequences.loc[rows, "sequence"] = scrambled.sequences.loc[rows, "sequence"].str[::-1]
    second = run_fold(family, scrambled, 1, family.params, device, seed=0, progress=False)

    assert second.training.selected == first.training.selected
    assert second.training.best_val_auc == first.training.best_val_auc
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # and the choice is the best validation AUC of the grid, computed here from the dev split alone
    dev = folds.sequences.iloc[folds.positions(1, "dev")]
    assert first.training.best_val_auc == pytest.approx(
        roc_auc_score(dev.label, predict(first.model, family.encode(dev.sequence), logits=True)), abs=1e-6)


def test_a_saved_regression_loads_with_the_same_scores(folds, tmp_path):
    family = KmerLRFamily(KmerLRParams(k_min=2, k_max=3, c_grid=[1.0]), k=3)
    result = run_fold(family, folds, 2, family.params, torch.device("cpu"), seed=0, progress=False)
    family.save(result.model, tmp_path / "m")
    inputs = family.encode(folds.sequences.sequence[:20])
    np.testing.assert_allclose(predict(family.load(tmp_path / "m"), inputs), predict(result.model, inputs), atol=1e-6)
    other = KmerLRFamily(KmerLRParams(k_min=1, k_max=3), k=3)
    with pytest.raises(Exception, match="k-mer features"):
        other.load(tmp_path / "m")
