import pandas as pd


def test_thresholded_test_metrics_call_at_the_cut_chosen_on_validation():
    """On 1 : 4 data a model's probabilities rarely pass 0.5; its accuracy, F1 and MCC are read at the
    cut Youden's J picks on the validation predictions (0.5 without a validation split)."""
    from rbp.cv import fold_threshold

    validation = pd.DataFrame({"label": [1, 1, 0, 0, 0, 0, 0, 0], "probability": [0.3, 0.25, 0.2, 0.1, 0.1, 0.05,
                                                                                   0.02, 0.01]})
    assert fold_threshold(validation) == 0.25
    assert fold_threshold(None) == 0.5 and fold_threshold(validation.assign(label=0)) == 0.5


def test_cross_validation_refuses_a_fold_the_folds_do_not_hold(small_data_dir, tmp_path):
    """Folds are numbered from 1: asking for fold 0 (or 6 of 5) is an error naming the folds, not a
    training on no rows."""
    import pytest
    import torch

    from rbp.cv import cross_validate
    from rbp.data import Folds, prepare_folds
    from rbp.errors import RbpError
    from rbp.families import make_family
    from rbp.params import load_params
    from tests.conftest import ROOT

    params = load_params(ROOT / "params" / "smoke.yaml", {"data_dir": str(small_data_dir), "folds": 3})
    prepare_folds(params, tmp_path / "run")
    folds = Folds(tmp_path / "run" / "folds")
    with pytest.raises(RbpError, match=r"only: fold 0 is not a fold of .*\(its folds: 1, 2, 3\)"):
        cross_validate(make_family("lstm", params), folds, params.lstm, torch.device("cpu"), params.seed,
                       progress=False, only=[0])
