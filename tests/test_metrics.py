import numpy as np
import pytest

from rbp.metrics import TEST_METRICS, binary_metrics, mean_std


def test_binary_metrics_by_hand():
    labels = [1, 1, 1, 0, 0, 0]
    probs = [0.9, 0.8, 0.4, 0.6, 0.2, 0.1]
    m = binary_metrics(labels, probs)
    # at 0.5: TP 2, FN 1, FP 1, TN 2
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["mcc"] == pytest.approx((2 * 2 - 1 * 1) / 9)
    assert m["auc"] == pytest.approx(8 / 9)  # 8 of 9 positive-negative pairs ordered right
    assert m["auprc"] == pytest.approx((1 + 1 + 3 / 4) / 3)


def test_mean_std_uses_sample_std():
    rows = [{k: v for k in TEST_METRICS} for v in (0.8, 0.9, 1.0)]
    out = mean_std(rows)
    assert out["mean_test_auc"] == pytest.approx(0.9)
    assert out["std_test_auc"] == pytest.approx(np.std([0.8, 0.9, 1.0], ddof=1))
    assert np.isnan(mean_std(rows[:1])["std_test_f1"])  # one fold has no spread to report


def test_format_mean_std():
    from rbp.metrics import format_mean_std

    assert format_mean_std(0.94612, 0.00718) == "0.9461 ± 0.0072"
    assert format_mean_std(0.9411, float("nan")) == format_mean_std(0.9411, None) == "0.9411"
