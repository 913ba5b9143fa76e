import pandas as pd


def test_thresholded_test_metrics_call_at_the_cut_chosen_on_validation():
    """On 1 : 4 data a model's probabilities rarely pass 0.5; its accuracy, F1 and MCC are read at the
    cut Youden's J picks on the validation predictions (0.5 without a validation split)."""
    from rbp.cv import fold_threshold

    validation = pd.DataFrame({"label": [1, 1, 0, 0, 0, 0, 0, 0], "probability": [0.3, 0.25, 0.2, 0.1, 0.1, 0.05,
                                                                                   0.02, 0.01]})
    assert fold_threshold(validation) == 0.25
    assert fold_threshold(None) == 0.5 and fold_threshold(validation.assign(label=0)) == 0.5
