"""The model-family protocol: every registered family keeps the contract the CV loop relies on."""

import pytest
import torch

from rbp.families import FAMILIES, FittedFamily, ModelFamily, TrainedFamily, family_class, make_family
from rbp.params import load_params
from rbp.train import predict
from tests.conftest import ROOT

SEQUENCES = ["ACGTACGTTTGACA", "GGGCCCAAATTTGC", "TTTTTTTTAAAAAC"]


TRAINED = ["dnabert", "lstm", "cnn"]  # built for the training loop; the k-mer LR and the ensemble are fitted


@pytest.fixture(params=TRAINED)
def family(request) -> ModelFamily:
    return make_family(request.param, load_params(ROOT / "params" / "smoke.yaml"))


def test_a_registered_family_keeps_the_protocol(family):
    assert isinstance(family, TrainedFamily) and family.name in FAMILIES
    assert family.k == (1 if family.name == "cnn" else 3)  # the CNN reads single nucleotides
    assert isinstance(family.amp, bool)
    tags = family.tags()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    assert family.describe().strip().endswith(".")
    inputs = family.encode(SEQUENCES)
    assert all(len(tensor) == len(SEQUENCES) for tensor in inputs.values())


def test_save_and_load_give_the_same_predictions(family, tmp_path):
    torch.manual_seed(0)
    model = family.build().eval()
    inputs = family.encode(SEQUENCES)
    family.save(model, tmp_path / "saved")
    again = family.load(tmp_path / "saved")
    assert not again.training
    before, after = predict(model, inputs), predict(again, inputs)
    assert before.shape == (len(SEQUENCES),) and ((before >= 0) & (before <= 1)).all()
    assert after == pytest.approx(before, abs=1e-6)


def test_unknown_family_is_named():
    with pytest.raises(KeyError, match="unknown model family 'gru'; known: dnabert, lstm, cnn, kmer_lr, ensemble"):
        family_class("gru")


def test_fitted_families_keep_their_protocol():
    params = load_params(ROOT / "params" / "smoke.yaml")
    for name in ("kmer_lr", "ensemble"):
        family = make_family(name, params)
        assert isinstance(family, FittedFamily) and not isinstance(family, TrainedFamily)
        assert family.describe().strip().endswith(".")


def test_every_family_has_a_params_section_and_a_notebook():
    from rbp.params import Params, TrainParams

    defaults = Params()
    for name, info in FAMILIES.items():
        assert name not in TRAINED or isinstance(getattr(defaults, name), TrainParams)
        assert (ROOT / "notebooks" / f"{info.notebook}.ipynb").is_file()
