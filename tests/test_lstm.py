import random

import pytest
import torch

from rbp.errors import RbpError
from rbp.lstm import UNROLL_FROM, BiLSTMClassifier, LSTMFamily, LSTMParams


def _lstm_params(input_size, hidden, layers):
    per_direction = [4 * hidden * (input_size if layer == 0 else 2 * hidden) + 4 * hidden * hidden + 8 * hidden
                     for layer in range(layers)]
    return 2 * sum(per_direction)


def test_parameter_count_and_output_shape():
    model = BiLSTMClassifier(vocab_size=69)  # the original's sizes: 128, 100, 2 layers, 64
    expected = 69 * 128 + _lstm_params(128, 100, 2) + (200 * 64 + 64) + (64 + 1)
    assert sum(p.numel() for p in model.parameters()) == expected == 447_361
    ids = LSTMFamily(LSTMParams(), 3).encode(["ACGU".replace("U", "T") * 20 + "A"] * 5)["input_ids"]
    assert ids.shape == (5, 79)
    assert model(ids).shape == (5,)


@pytest.mark.parametrize("readout", ["last", "max"])
def test_padding_does_not_change_the_logit(readout):
    torch.manual_seed(0)
    model = BiLSTMClassifier(vocab_size=69, embedding_dim=8, hidden_size=6, dense_size=4, readout=readout).eval()
    family = LSTMFamily(LSTMParams(), 3)
    short = family.encode(["ACGTTGCA"])["input_ids"]
    both = family.encode(["ACGTTGCA", "ACGTTGCAACGTAAA"])["input_ids"]
    assert both.shape[1] > short.shape[1]
    with torch.no_grad():
        assert torch.allclose(model(short)[0], model(both)[0], atol=1e-6)


def test_max_readout_is_the_maximum_of_the_last_layer_over_positions():
    torch.manual_seed(0)
    model = BiLSTMClassifier(vocab_size=69, embedding_dim=8, hidden_size=6, num_layers=2, dense_size=4,
                             readout="max").eval()
    ids = LSTMFamily(LSTMParams(), 3).encode(["ACGTTGCAACGT", "TTTTGGGGCCCC"])["input_ids"]
    with torch.no_grad():
        outputs, _ = model.lstm(model.embedding(ids))
        assert torch.allclose(model(ids), model.head(outputs.max(dim=1).values).squeeze(-1))
    with pytest.raises(ValueError, match="readout must be one of last, max"):
        BiLSTMClassifier(vocab_size=69, readout="mean")


@pytest.mark.parametrize("layers, readout", [(1, "max"), (1, "last"), (2, "last"), (2, "max")])
def test_evaluating_step_by_step_equals_the_lstm(layers, readout):
    torch.manual_seed(1)
    model = BiLSTMClassifier(vocab_size=69, embedding_dim=12, hidden_size=10, num_layers=layers, dense_size=4,
                             readout=readout).eval()
    sequences = ["".join(random.Random(i).choices("ACGTN", k=40)) for i in range(UNROLL_FROM + 6)]
    ids = LSTMFamily(LSTMParams(), 3).encode(sequences)["input_ids"]
    expected = model(ids).detach()  # gradients on: nn.LSTM
    assert model.__dict__.get("_derived") is None
    with torch.no_grad():
        unrolled = model(ids)
        weights = model.lstm.weight_hh_l0
        weights.mul_(-1)  # a changed weight is seen: the step tables are made again
        changed = model(ids)
        weights.mul_(-1)
    torch.testing.assert_close(unrolled, expected, atol=1e-5, rtol=0)
    assert model.__dict__.get("_derived") is not None  # the step-by-step path ran
    assert not torch.allclose(changed, expected, atol=1e-3)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=0)


def test_the_paper_recipes_keep_the_original_architecture():
    from rbp.params import load_params
    from tests.conftest import ROOT

    for name in ("paper", "lstm_tuned", "length_sweep"):
        p = load_params(ROOT / "params" / f"{name}.yaml", ["dnabert.init=scratch"]).lstm
        assert (p.embedding_dim, p.hidden_size, p.num_layers, p.dense_size, p.readout) == (128, 100, 2, 64, "last")
    default = load_params(ROOT / "params" / "default.yaml").lstm
    assert (default.num_layers, default.readout) == (1, "max")
    assert "1 layer of 100 units" in LSTMFamily(default, 3).describe()
    assert "read out by the maximum over positions" in LSTMFamily(default, 3).describe()


def test_checkpoint_round_trip(tmp_path):
    params = LSTMParams(embedding_dim=8, hidden_size=6, dense_size=4, num_layers=2, readout="last")
    family = LSTMFamily(params, 4)
    torch.manual_seed(1)
    model = family.build().eval()
    family.save(model, tmp_path)
    again = LSTMFamily(LSTMParams(), 4).load(tmp_path)  # the saved sizes win over the params'
    ids = family.encode(["ACGTACGTTT", "GGGCCCAAATT"])["input_ids"]
    assert not again.training
    with torch.no_grad():
        assert torch.equal(model(ids), again(ids))
    with pytest.raises(RbpError, match="a biLSTM over 4-mers, but this family encodes 3-mers"):
        LSTMFamily(params, 3).load(tmp_path)


def test_describe_names_the_training_recipe():
    from rbp.params import load_params
    from tests.conftest import ROOT

    tuned = LSTMFamily(load_params(ROOT / "params" / "lstm_tuned.yaml").lstm, 3).describe()
    assert "rmsprop lr 0.0002" in tuned and "30% of the k-mers of each training batch masked" in tuned
    paper = load_params(ROOT / "params" / "paper.yaml", ["dnabert.init=scratch"])
    assert "masked" not in LSTMFamily(paper.lstm, 3).describe()
