import pytest
import yaml

from rbp.params import Params, ParamsError, load_params, parse_overrides
from tests.conftest import ROOT


def test_default_yaml_is_the_schema_default():
    assert load_params(ROOT / "params" / "default.yaml") == Params()
    assert set(yaml.safe_load((ROOT / "params" / "default.yaml").read_text())) == set(Params().to_dict())


@pytest.mark.parametrize("name", ["default", "smoke", "paper", "lstm_tuned", "length_sweep"])
def test_shipped_params_load(name):
    load_params(ROOT / "params" / f"{name}.yaml")


def test_paper_recipe():
    p = load_params(ROOT / "params" / "paper.yaml")
    assert (p.folds, p.k, p.seed) == (5, 3, 42)
    assert (p.lstm.optimizer, p.lstm.lr, p.lstm.batch_size, p.lstm.max_epochs) == ("rmsprop", 2e-4, 32, 50)
    d = p.dnabert
    assert (d.optimizer, d.lr, d.weight_decay, d.schedule, d.warmup_fraction, d.max_epochs) == (
        "adamw", 2e-4, 0.01, "linear", 0.1, 5)
    assert (d.max_seq_length, d.grad_clip, d.batch_size) == (100, 1.0, 32)


def test_overrides_are_typed_yaml():
    p = load_params(overrides=["lstm.lr=1e-3", "folds=3", "data_dir=/x/pum2", "notebooks=[01_preprocess]"])
    assert (p.lstm.lr, p.folds, p.data_dir, p.dataset_name) == (0.001, 3, "/x/pum2", "pum2")
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_int_accepted_for_float():
    assert load_params(overrides={"val_fraction": 1e-1, "lstm": {"lr": 1}}).lstm.lr == 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fold": 5}, "unknown key fold; allowed at the top: dataset, data_dir"),
        ({"lstm": {"learning_rate": 1}}, "unknown key lstm.learning_rate; allowed in lstm: .*lr"),
        ({"folds": "five"}, "folds must be an integer, got 'five'"),
        ({"folds": 1}, "folds must be 0 .* or at least 2"),
        ({"lstm": {"optimizer": "lbfgs"}}, "lstm.optimizer must be one of 'rmsprop', 'adam'"),
        ({"seed": True}, "seed must be an integer, got True"),
        ({"k": 8}, "k must be 3, 4, 5 or 6"),
        ({"val_fraction": 1.5}, "val_fraction must lie between 0 and 1"),
        ({"dnabert": 3}, "dnabert must be a mapping"),
        ({"notebooks": ["05_magic"]}, "notebooks holds '05_magic'"),
        ({"notebooks": ["01_preprocess", "04_compare"]}, "holds 04_compare but no model notebook"),
        ({"notebooks": ["01_preprocess", "03_lstm_cv", "05_length_sweep"]}, "05_length_sweep: it needs sweep"),
        ({"lstm": {"mask_fraction": 1.0}}, r"lstm.mask_fraction must lie in \[0, 1\), got 1.0"),
        ({"dnabert": {"ema_decay": 1.5}}, "dnabert.ema_decay must lie between 0 and 1 .*got 1.5"),
    ],
)
def test_bad_params_name_the_key(overrides, message):
    with pytest.raises(ParamsError, match=message):
        load_params(overrides=overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("folds: [1,\n")
    with pytest.raises(ParamsError, match=r"bad\.yaml, line \d+: not valid YAML"):
        load_params(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("lstm:\n  lr: fast\n")
    with pytest.raises(ParamsError, match=r"wrong\.yaml: lstm.lr must be a number, got 'fast'"):
        load_params(wrong)


def test_bad_override_syntax():
    with pytest.raises(ParamsError, match="expected key=value"):
        parse_overrides(["folds"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"length": 2}, "length must be at least k = 3 nt, got 2"),
        ({"sweep": {"lengths": [21, 21]}}, "sweep.lengths holds a length twice"),
        ({"sweep": {"lengths": [21]}, "length": 41}, "length and sweep.lengths cannot both be set"),
        ({"dnabert": {"max_seq_length": 600}}, "dnabert.max_seq_length must lie between 3 and 512"),
        ({"short_sequences": "pad"}, "short_sequences must be one of 'keep', 'drop'"),
    ],
)
def test_window_params(overrides, message):
    with pytest.raises(ParamsError, match=message):
        load_params(overrides=overrides)
