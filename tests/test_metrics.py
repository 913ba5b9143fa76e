import numpy as np
import pandas as pd
import pytest

from rbp.metrics import (
    METRICS,
    TEST_METRICS,
    binary_metrics,
    format_mean_std,
    format_summary,
    metric,
    summarize_folds,
    summary_table,
)


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
    assert set(m) == {x.key for x in METRICS}


def test_macro_metrics_average_both_classes_as_dnabert_reports_them():
    labels = [1, 1, 1, 1, 0, 0]
    probs = [0.9, 0.8, 0.7, 0.2, 0.6, 0.1]
    m = binary_metrics(labels, probs)
    # at 0.5: TP 3, FN 1, FP 1, TN 1. Binding class: precision 3/4, recall 3/4;
    # the other class: precision 1/2, recall 1/2; macro: the plain mean of the two
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((3 / 4, 3 / 4, 3 / 4))
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == pytest.approx((5 / 8, 5 / 8, 5 / 8))
    assert metric("test_f1_macro").label == "macro F1" and "both classes" in metric("f1_macro").title


def test_the_registry_names_each_metric_once():
    assert TEST_METRICS == ("test_auc", "test_auprc", "test_acc", "test_f1", "test_mcc", "test_precision",
                            "test_recall", "test_f1_macro", "test_precision_macro", "test_recall_macro")
    assert metric("test_auc") is metric("auc") and metric("auc").label == "ROC AUC"
    assert len({m.label for m in METRICS}) == len(METRICS) and all(m.higher_is_better for m in METRICS)
    with pytest.raises(KeyError, match="unknown metric 'rocauc'; known: auc, auprc"):
        metric("rocauc")


def test_fold_summary_uses_sample_std():
    rows = [{k: v for k in TEST_METRICS} for v in (0.8, 0.9, 1.0)]
    out = summarize_folds(rows)
    assert out["mean_test_auc"] == pytest.approx(0.9)
    assert out["std_test_auc"] == pytest.approx(np.std([0.8, 0.9, 1.0], ddof=1))
    assert np.isnan(summarize_folds(rows[:1])["std_test_f1"])  # one fold has no spread to report
    assert summarize_folds(pd.DataFrame(rows), ["best_val_auc"]) == {"mean_best_val_auc": pytest.approx(np.nan,
                                                                                                          nan_ok=True),
                                                                      "std_best_val_auc": pytest.approx(np.nan,
                                                                                                        nan_ok=True)}


def test_summary_table_and_its_reading_form():
    folds = pd.DataFrame({"fold": [1, 2], **{k: [0.8, 0.9] for k in TEST_METRICS}})
    table = summary_table({"LSTM": folds, "one fold": folds.iloc[:1]})
    assert table.columns[:4].tolist() == ["model", "n_folds", "mean_test_auc", "std_test_auc"]
    assert table.n_folds.tolist() == [2, 1]
    shown = format_summary(table)
    assert shown.loc["LSTM", "ROC AUC"] == "0.8500 ± 0.0707" and shown.loc["one fold", "MCC"] == "0.8000"
    assert shown.loc["LSTM", "folds"] == "2" and "mean_test_auc" not in shown


def test_format_mean_std():
    assert format_mean_std(0.94612, 0.00718) == "0.9461 ± 0.0072"
    assert format_mean_std(0.9411, float("nan")) == format_mean_std(0.9411, None) == "0.9411"
