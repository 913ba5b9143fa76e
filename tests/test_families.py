"""The model-family protocol: every registered family keeps the contract the CV loop relies on."""

import pytest
import torch

from rbp.families import FAMILIES, FittedFamily, ModelFamily, TrainedFamily, family_class, make_family
from rbp.params import load_params
from rbp.train import predict
from tests.conftest import ROOT

SEQUENCES = ["ACGTACGTTTGACA", "GGGCCCAAATTTGC", "TTTTTTTTAAAAAC"]


# built for the training loop (the k-mer LR and the ensemble are fitted instead), as the registry says
TRAINED = [name for name in FAMILIES if hasattr(family_class(name), "build")]
FITTED = [name for name in FAMILIES if name not in TRAINED]


@pytest.fixture(params=TRAINED)
def family(request) -> ModelFamily:
    return make_family(request.param, load_params(ROOT / "params" / "smoke.yaml"))


def test_a_registered_family_keeps_the_protocol(family):
    assert isinstance(family, TrainedFamily) and family.name in FAMILIES
    # a family whose class fixes its token size (the CNN reads single nucleotides) keeps it; the others take
    # the data's k
    assert family.k == getattr(type(family), "k", 3)
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
    for name in FITTED:
        family = make_family(name, params)
        assert isinstance(family, FittedFamily) and not isinstance(family, TrainedFamily)
        assert family.describe().strip().endswith(".")


def test_every_family_has_a_params_section_and_a_notebook():
    from rbp.params import Params
    from rbp.train import TrainParams

    defaults = Params()
    for name, info in FAMILIES.items():
        assert name not in TRAINED or isinstance(getattr(defaults, name), TrainParams)
        assert (ROOT / "notebooks" / f"{info.notebook}.ipynb").is_file()
