"""rbp.stats: paired tests over folds and the pooled-AUC interval, checked against scipy and by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from rbp.errors import RbpError
from rbp.stats import auc_difference_ci, holm, paired_tests, rank_auc
from tests.fake_store import FOLD_AUC, fake_oof


def test_paired_tests_equal_scipy():
    a = pd.DataFrame({"fold": [1, 2, 3, 4, 5], "test_auc": FOLD_AUC["dnabert"]})
    b = pd.DataFrame({"fold": [5, 4, 3, 2, 1], "test_auc": FOLD_AUC["lstm"][::-1]})  # order must not matter
    test = paired_tests(a, b, names=("DNABERT", "LSTM"))
    x, y = np.array(FOLD_AUC["dnabert"]), np.array(FOLD_AUC["lstm"])
    t = stats.ttest_rel(x, y)
    w = stats.wilcoxon(x, y)
    assert test.n_folds == 5
    assert test.differences.difference.tolist() == pytest.approx((x - y).tolist())
    assert test.mean_difference == pytest.approx((x - y).mean())
    assert (test.t_statistic, test.t_pvalue) == pytest.approx((t.statistic, t.pvalue))
    assert (test.wilcoxon_statistic, test.wilcoxon_pvalue) == pytest.approx((w.statistic, w.pvalue))
    assert "n = 5 folds" in test.note and "0.0625" in test.note


def test_paired_tests_use_only_shared_folds_and_refuse_different_folds():
    a = pd.DataFrame({"fold": [1, 2, 3], "test_auc": [0.9, 0.8, 0.7], "folds_sha256": "x"})
    b = pd.DataFrame({"fold": [2, 3, 4], "test_auc": [0.85, 0.6, 0.5], "folds_sha256": "x"})
    test = paired_tests(a, b)
    assert test.n_folds == 2 and test.differences.fold.tolist() == [2, 3]
    assert test.t_pvalue == pytest.approx(stats.ttest_rel([0.8, 0.7], [0.85, 0.6]).pvalue)
    with pytest.raises(RbpError, match="different folds"):
        paired_tests(a, b.assign(folds_sha256="y"))
    with pytest.raises(RbpError, match="share no fold"):
        paired_tests(a, b.assign(fold=[7, 8, 9]))
    one = paired_tests(a, b.assign(fold=[3, 8, 9]))
    assert one.n_folds == 1 and math.isnan(one.t_pvalue) and "no paired test" in one.note


def _direct_delong(x, y, labels):
    """DeLong from its definition: the kernel psi over every positive-negative pair."""
    pos, neg = labels == 1, labels == 0
    v10, v01 = [], []
    for scores in (x, y):
        psi = (scores[pos][:, None] > scores[neg][None, :]) + 0.5 * (scores[pos][:, None] == scores[neg][None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    var = np.array([1, -1]) @ (np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()) @ np.array([1, -1])
    diff = v10[0].mean() - v10[1].mean()
    return diff, diff - stats.norm.ppf(0.975) * np.sqrt(var), 2 * stats.norm.sf(abs(diff) / np.sqrt(var))


def test_delong_equals_a_direct_computation():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 120)
    x = np.round(labels + rng.normal(size=120), 1)  # rounding makes ties, which DeLong scores 1/2
    y = np.round(0.5 * labels + rng.normal(size=120), 1)
    a = pd.DataFrame({"id": range(120), "label": labels, "probability": x})
    b = pd.DataFrame({"id": range(120)[::-1], "label": labels[::-1], "probability": y[::-1]})  # paired on id
    result = auc_difference_ci(a, b)
    diff, low, p = _direct_delong(x, y, labels)
    assert result.auc_a == pytest.approx(roc_auc_score(labels, x))
    assert result.auc_b == pytest.approx(roc_auc_score(labels, y))
    assert (result.difference, result.ci_low, result.p_value) == pytest.approx((diff, low, p))
    assert result.ci_high - result.difference == pytest.approx(result.difference - result.ci_low)
    assert result.n == 120 and result.n_positives == labels.sum()


def test_the_interval_contains_the_true_difference():
    """Binormal scores with a shared component: true AUC = Phi(separation / sqrt(2))."""
    rng = np.random.default_rng(7)
    n = 1500
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    shared = rng.normal(size=2 * n)
    x = 1.5 * labels + np.sqrt(0.5) * (shared + rng.normal(size=2 * n))
    y = 0.9 * labels + np.sqrt(0.5) * (shared + rng.normal(size=2 * n))
    truth = stats.norm.cdf(1.5 / np.sqrt(2)) - stats.norm.cdf(0.9 / np.sqrt(2))
    a = pd.DataFrame({"id": range(2 * n), "label": labels, "probability": x})
    b = a.assign(probability=y)
    delong = auc_difference_ci(a, b)
    boot = auc_difference_ci(a, b, method="bootstrap", n_boot=300, seed=1)
    for result in (delong, boot):
        assert result.ci_low < truth < result.ci_high and result.p_value < 1e-6
    assert boot.difference == delong.difference
    assert (boot.ci_low, boot.ci_high) == pytest.approx((delong.ci_low, delong.ci_high), abs=0.01)
    same = auc_difference_ci(a, a)
    assert (same.difference, same.ci_low, same.ci_high, same.p_value) == (0, 0, 0, 1)


def test_auc_difference_refuses_predictions_that_do_not_pair():
    a = fake_oof("lstm")
    with pytest.raises(RbpError, match="different folds"):
        auc_difference_ci(a, a.assign(fold=a.fold % 5 + 1))
    with pytest.raises(RbpError, match="disagree on the label"):
        auc_difference_ci(a, a.assign(label=1 - a.label))
    with pytest.raises(RbpError, match="no out-of-fold prediction for the same sequence"):
        auc_difference_ci(a, a.assign(id="other" + a.id))


def test_rank_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(size=(3, 200)) + labels, 1)
    assert rank_auc(scores, labels) == pytest.approx([roc_auc_score(labels, row) for row in scores])


def test_holm_matches_a_hand_computation():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06 (never below a step before)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2]) == pytest.approx([0.2])  # one comparison: nothing to adjust
    assert holm([]).shape == (0,)


def test_holm_passes_nan_through_and_does_not_count_it():
    adjusted = holm([0.01, float("nan"), 0.04])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.04])  # two tests, not three
    assert np.isnan(holm([float("nan"), float("nan")])).all()


def test_holm_is_monotone_capped_at_one_and_never_below_the_raw_p():
    rng = np.random.default_rng(5)
    for _ in range(50):
        raw = rng.uniform(0, 1, rng.integers(1, 9)) ** 3
        adjusted = holm(raw)
        order = np.argsort(raw)
        assert np.all(np.diff(adjusted[order]) >= 0)  # the order of the raw p-values is kept
        assert np.all(adjusted >= raw) and np.all(adjusted <= 1)
    assert holm([0.5, 0.6, 0.7]).tolist() == [1.0, 1.0, 1.0]
    assert holm(pd.Series([0.3, 0.01], index=[7, 9])) == pytest.approx([0.3, 0.02])
