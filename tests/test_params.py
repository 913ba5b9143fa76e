import re

import pytest

from rbp.params import Params, ParamsError, flatten, load_params, parse_overrides, read_yaml
from tests.conftest import ROOT

SHIPPED = sorted(path.stem for path in (ROOT / "params").glob("*.yaml"))


def test_default_yaml_is_the_schema_default():
    """params/default.yaml lists every key of the schema (sections included), with its default."""
    assert load_params(ROOT / "params" / "default.yaml") == Params()
    assert set(flatten(read_yaml(ROOT / "params" / "default.yaml"))) == set(Params().flat())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_params_load_the_values_they_state(name):
    """Every value a shipped file states is the value its Params holds; the rest are the defaults."""
    stated = flatten(read_yaml(ROOT / "params" / f"{name}.yaml"))
    # a recipe of pre-trained DNABERT needs its checkpoint to load at all
    given = {"dnabert.checkpoint": "/x/dnabert-3"} if stated.get("dnabert.init") == "pretrained" else {}
    loaded = load_params(ROOT / "params" / f"{name}.yaml", [f"{k}={v}" for k, v in given.items()]).flat()
    default = Params().flat()
    assert set(stated) <= set(loaded)
    for key, value in loaded.items():
        assert value == given.get(key, stated.get(key, default[key])), key


def test_shipped_recipes_say_what_they_are_for():
    smoke = load_params(ROOT / "params" / "smoke.yaml")
    assert (smoke.folds, smoke.seed, smoke.lstm.hidden_size, smoke.dnabert.max_epochs) == (2, 7, 8, 1)
    assert load_params(ROOT / "params" / "lstm_tuned.yaml").lstm.mask_fraction == 0.3
    sweep = load_params(ROOT / "params" / "length_sweep.yaml")
    assert sweep.sweep.lengths == [21, 31, 41, 61, 81] and sweep.notebooks[-1] == "05_length_sweep"


def test_paper_recipe():
    p = load_params(ROOT / "params" / "paper.yaml", ["dnabert.checkpoint=/x/dnabert-3"])
    assert (p.folds, p.k, p.seed) == (5, 3, 42)
    assert (p.lstm.optimizer, p.lstm.lr, p.lstm.batch_size, p.lstm.max_epochs) == ("rmsprop", 2e-4, 32, 50)
    d = p.dnabert
    assert (d.optimizer, d.lr, d.weight_decay, d.schedule, d.warmup_fraction, d.max_epochs) == (
        "adamw", 2e-4, 0.01, "linear", 0.1, 5)
    assert (d.max_seq_length, d.grad_clip, d.batch_size) == (100, 1.0, 32)


def test_the_paper_recipe_refuses_to_run_without_its_checkpoint(tmp_path):
    with pytest.raises(ParamsError, match=r"dnabert\.init is pretrained, but dnabert\.checkpoint names no "
                                          r"checkpoint\. DNABERT-3 is a BERT model pre-trained") as refused:
        load_params(ROOT / "params" / "paper.yaml", ["data_dir=/x/pum2"])
    message = str(refused.value)
    assert "github.com/jerryji1993/DNABERT" in message and "-p dnabert.checkpoint=" in message
    assert "-p dnabert.init=scratch" in message
    scratch = load_params(ROOT / "params" / "paper.yaml", ["dnabert.init=scratch"]).dnabert
    assert (scratch.initialisation, scratch.size) == ("scratch", "base")
    given = load_params(ROOT / "params" / "paper.yaml", [f"dnabert.checkpoint={tmp_path}"]).dnabert
    assert given.initialisation == "pretrained"
    # without DNABERT among the notebooks, nothing needs the checkpoint
    assert load_params(ROOT / "params" / "paper.yaml", ["notebooks=[01_preprocess, 03_lstm_cv]"])
    with pytest.raises(ParamsError, match="dnabert.init is scratch, but dnabert.checkpoint names"):
        load_params(overrides=["dnabert.init=scratch", f"dnabert.checkpoint={tmp_path}"])
    # null follows the checkpoint
    assert load_params().dnabert.initialisation == "scratch"
    assert load_params(overrides=[f"dnabert.checkpoint={tmp_path}"]).dnabert.initialisation == "pretrained"


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
        ({"group_overlap": 0}, "group_overlap must be a length in nt"),
        ({"dnabert": 3}, "dnabert must be a mapping"),
        ({"notebooks": ["05_magic"]}, "notebooks holds '05_magic'"),
        ({"notebooks": ["01_preprocess", "04_compare"]}, "holds 04_compare but no model notebook"),
        ({"notebooks": ["01_preprocess", "03_lstm_cv", "05_length_sweep"]}, "05_length_sweep: it needs sweep"),
        ({"lstm": {"mask_fraction": 1.0}}, r"lstm.mask_fraction must lie in \[0, 1\), got 1.0"),
        ({"dnabert": {"ema_decay": 1.5}}, "dnabert.ema_decay must lie between 0 and 1 .*got 1.5"),
        ({"seed": -1}, r"seed must lie between 0 and 2\*\*32 - 1, got -1"),
        ({"seed": 2**32}, r"seed must lie between 0 and 2\*\*32 - 1, got 4294967296"),
        ({"lstm": {"eval_batch_size": 0}}, "lstm.eval_batch_size must be at least 1, got 0"),
        ({"lstm": {"dropout": 1.5}}, r"lstm.dropout must lie in \[0, 1\), got 1.5"),
        ({"dnabert": {"attention_dropout": -0.1}}, r"dnabert.attention_dropout must lie in \[0, 1\)"),
        ({"lstm": {"lr": float("inf")}}, "lstm.lr must be a positive finite number, got inf"),
        ({"dnabert": {"grad_clip": 0}}, "dnabert.grad_clip must be positive, or null for none; got 0"),
        ({"dataset": "pum2/v2"}, "dataset gives the data set name 'pum2/v2'.*letters, digits"),
        ({"dataset": "../../escape"}, "dataset gives the data set name '../../escape'"),
        ({"data_dir": "/x/my data"}, "data_dir gives the data set name 'my data'.*; or set dataset"),
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


def test_collect_reads_a_notebook_namespace_whose_names_were_rebound():
    from rbp.params import collect

    namespace = {"folds": 3, "device": "cpu", "lstm": {"lr": 1e-3}, "other": object()}
    first = collect(namespace)
    assert (first.folds, first.device, first.lstm.lr) == (3, "cpu", 1e-3)
    namespace.update(folds=object(), device=object())  # `folds = Folds(...)`, `device = torch.device(...)`
    again = collect(namespace)
    assert again == first
    namespace["seed"] = 7  # a parameter changed by hand and the cell run again
    assert collect(namespace).seed == 7 and collect(namespace).folds == 3
    with pytest.raises(ParamsError, match="folds must be an integer"):
        collect({"folds": "five"})


def test_a_bad_override_is_blamed_on_the_override_not_the_file():
    with pytest.raises(ParamsError, match=r"default\.yaml with -p overrides: lstm.lr must be a number"):
        load_params(ROOT / "params" / "default.yaml", ["lstm.lr=fast"])
    assert load_params(ROOT / "params" / "default.yaml", ["dataset=pum2.v2_b-1"]).dataset_name == "pum2.v2_b-1"


def test_new_families_are_checked_before_anything_runs():
    with pytest.raises(ParamsError, match="cnn.kernel_size and cnn.dilation need one entry per convolution layer"):
        load_params(None, ["cnn.channels=[64, 64]"])
    with pytest.raises(ParamsError, match="kmer_lr.k_min"):
        load_params(None, ["kmer_lr.k_min=5", "kmer_lr.k_max=4"])
    with pytest.raises(ParamsError, match="kmer_lr.c_grid"):
        load_params(None, ["kmer_lr.c_grid=[0.1, -1]"])
    with pytest.raises(ParamsError, match="ensemble.members holds 'ensemble'"):
        load_params(None, ["ensemble.members=[lstm, ensemble]"])


def test_the_ensemble_comes_after_the_models_it_averages():
    with pytest.raises(ParamsError, match="03_cnn_cv must come before it"):
        load_params(None, ["notebooks=[01_preprocess, 03_lstm_cv, 03_ensemble_cv, 03_cnn_cv]",
                           "ensemble.members=[lstm, cnn]"])
    with pytest.raises(ParamsError, match="at least two model notebooks before it, got 1"):
        load_params(None, ["notebooks=[01_preprocess, 03_lstm_cv, 03_ensemble_cv]"])
    best = load_params(ROOT / "params" / "best.yaml")
    assert best.ensemble.members == ["lstm", "cnn"] and best.notebooks.index("03_ensemble_cv") > 2
    assert best.lstm.mask_fraction == 0.3 and best.cnn.mask_fraction == 0.2


@pytest.mark.parametrize("override, shown", [
    ("notebooks=[01_preprocess,", "override 'notebooks=[01_preprocess,': the value is not valid YAML"),
    ("seed=!!python/object/apply:os.system ['echo hi']", "the value is not valid YAML (could not determine a "
                                                          "constructor"),
    ("dataset=a\tb: c", "the value is not valid YAML"),
])
def test_a_malformed_yaml_override_is_one_message_naming_it(override, shown):
    with pytest.raises(ParamsError, match=re.escape(shown)):
        load_params(overrides=[override])


def test_a_key_given_twice_in_a_params_file_is_refused_by_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("folds: 2\nseed: 1\nfolds: 3\n")
    with pytest.raises(ParamsError, match=re.escape(f"{path}, line 3: not valid YAML (the key 'folds' is given "
                                                    "twice (first at line 1))")):
        load_params(path)
    path.write_text("cnn:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ParamsError, match="line 3: .*the key 'lr' is given twice"):
        load_params(path)
    path.write_text("cnn: {lr: 0.1}\nlstm: {lr: 0.1}\n")  # the same key in two sections is fine
    assert load_params(path).lstm.lr == 0.1
