import math

import numpy as np
import pytest

from tfrs_app.evaluation.bootstrap import paired_bootstrap
from tfrs_app.evaluation.metrics import (classification_metrics, precision_recall, recall_at_precision,
                                         reliability_curve, score_pr_curve)


def _calibrated_bins():
    """Five probability levels, each with exactly that share of positives among 10 examples."""
    prob = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9], 10)
    label = np.concatenate([[1] * k + [0] * (10 - k) for k in (1, 3, 5, 7, 9)])
    return prob, label


def test_ece_of_perfectly_calibrated_bins_is_zero():
    prob, label = _calibrated_bins()
    assert classification_metrics(prob, label)["ece"] == pytest.approx(0.0, abs=1e-12)


def test_ece_worked_example():
    # one bin predicting 0.8 where half are positive: |0.8 - 0.5| = 0.3;
    # plus a bin predicting 0.1 with no positive (weight 1/3): ECE = 2/3 * 0.3 + 1/3 * 0.1
    prob = np.array([0.8, 0.8, 0.8, 0.8, 0.1, 0.1])
    label = np.array([1, 1, 0, 0, 0, 0])
    assert classification_metrics(prob, label)["ece"] == pytest.approx(2 / 3 * 0.3 + 1 / 3 * 0.1)


def test_perfect_ranking_and_base_rate():
    prob = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    label = np.array([0, 0, 0, 1, 1])
    m = classification_metrics(prob, label)
    assert m["auc"] == 1.0 and m["pr_auc"] == 1.0
    assert m["base_rate"] == pytest.approx(0.4) and m["n"] == 5
    expected = -np.mean(np.log([0.9, 0.8, 0.7, 0.7, 0.8]))
    assert m["log_loss"] == pytest.approx(expected)


def test_one_class_gives_nan_not_a_crash():
    m = classification_metrics(np.array([0.2, 0.4, 0.9]), np.array([0.0, 0.0, 0.0]))
    assert math.isnan(m["auc"]) and math.isnan(m["pr_auc"])
    assert np.isfinite(m["log_loss"]) and m["base_rate"] == 0.0
    assert classification_metrics(np.array([0.0, 1.0]), np.array([0, 1]))["log_loss"] < 1e-5  # clipped, finite


def test_weights_equal_duplicated_rows():
    prob, label = _calibrated_bins()
    prob = prob + 0.05
    weight = np.arange(1, prob.size + 1) % 3 + 1.0
    weighted = classification_metrics(prob, label, weight)
    repeated = classification_metrics(np.repeat(prob, weight.astype(int)), np.repeat(label, weight.astype(int)))
    for key in ("auc", "pr_auc", "log_loss", "ece", "base_rate"):
        assert weighted[key] == pytest.approx(repeated[key])


def test_reliability_curve_bins():
    rng = np.random.default_rng(0)
    prob = rng.random(1000)
    label = (rng.random(1000) < prob).astype(int)
    predicted, observed, count = reliability_curve(prob, label)
    assert count.sum() == 1000 and count.size == 15
    assert np.all(np.diff(predicted) > 0)
    assert np.all((predicted >= 0) & (predicted <= 1) & (observed >= 0) & (observed <= 1))
    predicted, observed, count = reliability_curve(np.array([0.02, 0.06, 1.0]), np.array([0, 1, 1]))
    assert count.tolist() == [2, 1]  # empty bins are left out; 1.0 falls in the last bin
    assert predicted == pytest.approx([0.04, 1.0]) and observed.tolist() == [0.5, 1.0]


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="label"):
        classification_metrics(np.array([0.1, 0.2]), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="prob"):
        classification_metrics(np.array([0.1, 1.2]), np.array([0, 1]))


def test_precision_recall_and_empty_selection():
    label = np.array([1, 0, 1, 1, 0])
    assert precision_recall(np.array([True, True, False, True, False]), label) == (2 / 3, 2 / 3)
    precision, recall = precision_recall(np.zeros(5, dtype=bool), label)
    assert math.isnan(precision) and recall == 0.0


def test_score_pr_curve_and_recall_at_precision():
    score = np.array([0.9, 0.8, 0.8, 0.7, 0.6])
    label = np.array([1, 1, 0, 1, 0])
    thresholds, precision, recall = score_pr_curve(score, label)
    assert thresholds.tolist() == [0.9, 0.8, 0.7, 0.6]  # the tie at 0.8 is one point
    assert precision.tolist() == [1.0, 2 / 3, 3 / 4, 3 / 5]
    assert recall.tolist() == [1 / 3, 2 / 3, 1.0, 1.0]
    assert recall_at_precision(precision, recall, 0.7) == 1.0
    assert recall_at_precision(precision, recall, 0.8) == 1 / 3
    assert math.isnan(recall_at_precision([0.5, np.nan], [0.2, 0.3], 0.9))


# ----------------------------------------------------------------------------- paired bootstrap

def _bootstrap_case(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(int)
    score = rng.random(n) + 0.5 * label
    return label, score


def test_identical_policies_are_not_different():
    label, score = _bootstrap_case()
    chosen = score > 1.0
    result = paired_bootstrap(label, {"global": chosen, "same": chosen.copy()}, "global", num_samples=200,
                              baseline_score=score)
    same = result["policies"]["same"]
    assert same["recall_diff"] == {"point": 0.0, "ci": [0.0, 0.0]}
    assert same["precision_diff"]["ci"] == [0.0, 0.0]
    assert same["significant"] is False
    assert same["matched_gain"]["ci"] == [0.0, 0.0] and same["matched_gain"]["significant"] is False
    assert result["policies"]["global"]["precision_ci"] == same["precision_ci"]
    assert "recall_diff" not in result["policies"]["global"]


def test_more_positives_at_equal_precision_is_significant():
    n = 2000
    label = np.zeros(n, dtype=int)
    label[:600] = 1
    baseline = np.zeros(n, dtype=bool)
    baseline[:80] = True          # 80 positives
    baseline[600:620] = True      # 20 negatives: precision 0.8
    better = baseline.copy()
    better[80:160] = True         # 80 more positives
    better[620:640] = True        # 20 more negatives: precision still 0.8
    result = paired_bootstrap(label, {"global": baseline, "better": better}, "global", num_samples=300, seed=1)
    entry = result["policies"]["better"]
    assert entry["precision"] == pytest.approx(0.8) and result["policies"]["global"]["precision"] == pytest.approx(0.8)
    assert entry["recall_diff"]["point"] == pytest.approx(80 / 600)
    assert entry["recall_diff"]["ci"][0] > 0 and entry["significant"] is True
    low, high = entry["recall_ci"]
    assert low < entry["recall"] < high


def test_matched_gain_separates_a_trade_from_a_gain():
    label, score = _bootstrap_case(n=20000, seed=2)
    baseline = score > 1.1
    looser = score > 1.0  # more recall at lower precision: a point on the same PR curve
    result = paired_bootstrap(label, {"global": baseline, "looser": looser}, "global", num_samples=300,
                              baseline_score=score)
    entry = result["policies"]["looser"]
    assert entry["significant"] is True  # the recall difference is real...
    assert entry["matched_gain"]["point"] <= 0 and entry["matched_gain"]["significant"] is False  # ...not a gain
    # an oracle that knows the labels lies above the score's curve
    oracle = baseline | ((label == 1) & (score > 0.9))
    result = paired_bootstrap(label, {"global": baseline, "oracle": oracle}, "global", num_samples=300,
                              baseline_score=score)
    assert result["policies"]["oracle"]["matched_gain"]["significant"] is True


def test_bootstrap_is_deterministic_and_validates():
    label, score = _bootstrap_case()
    decisions = {"global": score > 1.0, "other": score > 0.9}
    assert paired_bootstrap(label, decisions, "global", 100, seed=3) == paired_bootstrap(label, decisions, "global",
                                                                                          100, seed=3)
    with pytest.raises(ValueError, match="baseline"):
        paired_bootstrap(label, decisions, "nope")
    with pytest.raises(ValueError, match="other"):
        paired_bootstrap(label, {"global": score > 1.0, "other": (score > 0.9)[:10]}, "global")
