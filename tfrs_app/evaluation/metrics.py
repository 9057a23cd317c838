"""Classification and calibration metrics of one head's probabilities, and precision/recall of
a selection.

``classification_metrics`` is what the ranker reports per head and split (AUC, PR-AUC, log
loss, ECE, base rate); ``reliability_curve`` is the data of a reliability diagram;
``precision_recall`` measures a decision (a boolean selection); ``pr_curve_for_policy`` traces
a threshold policy's test precision/recall as its validation target moves, which is how
policies are compared at matched test precision (``tfrs_app.evaluation.report``).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from tfrs_app.decision.thresholds import check_labels, fit_table

ECE_BINS = 15
_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] for the log loss


def _check_prob(prob, n: Optional[int] = None) -> np.ndarray:
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 1 or prob.size == 0:
        raise ValueError(f"prob: expected a non-empty 1-D array, got shape {prob.shape}")
    if n is not None and prob.size != n:
        raise ValueError(f"prob: length {prob.size} differs from label's {n}")
    bad = np.flatnonzero(~np.isfinite(prob) | (prob < 0) | (prob > 1))
    if bad.size:
        raise ValueError(f"prob: values must be finite probabilities in [0, 1]; the first bad one is at index "
                         f"{bad[0]} ({prob[bad[0]]})")
    return prob


def _bin_index(prob: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin [N] in 0..bins-1 of each probability; 1.0 falls in the last bin."""
    return np.minimum((prob * bins).astype(np.int64), bins - 1)


def reliability_curve(prob: np.ndarray, label: np.ndarray, bins: int = ECE_BINS,
                      weight: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty equal-width bin of prob [N]: (mean predicted [K], observed positive rate
    [K], example count [K] int64), K <= bins. Means and rates use ``weight`` [N] when given;
    counts are always plain example counts (they sum to N)."""
    label = check_labels(label)
    prob = _check_prob(prob, label.size)
    w = np.ones(prob.size) if weight is None else np.asarray(weight, dtype=np.float64)
    index = _bin_index(prob, bins)
    total = np.bincount(index, weights=w, minlength=bins)
    predicted = np.bincount(index, weights=w * prob, minlength=bins)
    observed = np.bincount(index, weights=w * label, minlength=bins)
    count = np.bincount(index, minlength=bins).astype(np.int64)
    keep = (count > 0) & (total > 0)
    return predicted[keep] / total[keep], observed[keep] / total[keep], count[keep]


def expected_calibration_error(prob: np.ndarray, label: np.ndarray, bins: int = ECE_BINS,
                               weight: Optional[np.ndarray] = None) -> float:
    """sum over bins of (bin weight / total weight) * |mean predicted - observed rate|."""
    label = check_labels(label)
    prob = _check_prob(prob, label.size)
    w = np.ones(prob.size) if weight is None else np.asarray(weight, dtype=np.float64)
    index = _bin_index(prob, bins)
    total = np.bincount(index, weights=w, minlength=bins)
    gap = np.abs(np.bincount(index, weights=w * prob, minlength=bins) - np.bincount(index, weights=w * label,
                                                                                    minlength=bins))
    return float(gap.sum() / total.sum())  # |sum w p - sum w y| per bin = total_b * |mean p - rate|


def classification_metrics(prob: np.ndarray, label: np.ndarray, weight: Optional[np.ndarray] = None) -> dict:
    """{auc, pr_auc, log_loss, ece, base_rate, n} of probabilities prob [N] against 0/1 labels
    [N], optionally weighted by weight [N].

    pr_auc is sklearn's average precision. With a single class present AUC and PR-AUC are
    undefined and reported as NaN (not an error): a small split or a rare head can be all
    negatives. log loss clips prob to [1e-7, 1 - 1e-7]; ECE uses 15 equal-width bins weighted
    by their (weighted) counts.
    """
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    label = check_labels(label)
    prob = _check_prob(prob, label.size)
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64)
        if weight.shape != prob.shape or not np.all(np.isfinite(weight)) or np.any(weight < 0) or weight.sum() <= 0:
            raise ValueError(f"weight: expected finite non-negative weights of shape {prob.shape} with a positive sum")
    both = label.min() != label.max()
    auc = float(roc_auc_score(label, prob, sample_weight=weight)) if both else math.nan
    pr_auc = float(average_precision_score(label, prob, sample_weight=weight)) if both else math.nan
    clipped = np.clip(prob, _EPS, 1 - _EPS)
    return {
        "auc": auc,
        "pr_auc": pr_auc,
        "log_loss": float(log_loss(label, clipped, sample_weight=weight, labels=[0, 1])),
        "ece": expected_calibration_error(prob, label, ECE_BINS, weight),
        "base_rate": float(np.average(label, weights=weight)),
        "n": int(label.size),
    }


def precision_recall(selected: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of a boolean selection [N] against 0/1 labels [N].

    Precision of an empty selection is NaN (undefined, not 1.0: nothing was claimed, and a
    policy that selects nothing must not look perfect); recall with no positives is NaN too.
    """
    label = check_labels(label)
    selected = np.asarray(selected, dtype=bool)
    if selected.shape != label.shape:
        raise ValueError(f"selected: shape {selected.shape} differs from label's {label.shape}")
    true_positives = int(label[selected].sum())
    chosen, positives = int(selected.sum()), int(label.sum())
    return (true_positives / chosen if chosen else math.nan, true_positives / positives if positives else math.nan)


def score_pr_curve(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact PR curve of thresholding ``score`` [N]: (threshold [G], precision [G], recall
    [G]) for every distinct score t (selection {score >= t}), highest threshold first."""
    label = check_labels(label)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
    true_positives = np.cumsum(label[order])[ends]
    positives = max(int(label.sum()), 1)
    return ordered[ends], true_positives / (ends + 1), true_positives / positives


def pr_curve_for_policy(policy: str, val: dict, test: dict, targets: Sequence[float], edges: np.ndarray,
                        min_positives: int = 20, bin_size: Optional[int] = None, head: str = "head",
                        val_bucket: Optional[np.ndarray] = None, test_bucket: Optional[np.ndarray] = None) -> dict:
    """A policy's test PR curve: fit it on ``val`` at every validation target, measure on ``test``.

    val / test: {"score", "std", "label"} arrays. ``edges`` are the validation std edges shared
    by all policies. With ``val_bucket`` / ``test_bucket`` (e.g. placebo buckets, in
    0..len(edges)) the policy ("dp" or "mist") is fitted on those bucket assignments instead of
    the std buckets.
    Returns {"targets", "precision", "recall", "thresholds"} lists, one entry per target
    (precision NaN where the fitted policy selects nothing on test).
    """
    from tfrs_app.decision.thresholds import fit_dp, fit_mist

    out = {"targets": [], "precision": [], "recall": [], "thresholds": []}
    for target in targets:
        if val_bucket is None:
            table = fit_table(head, policy, val["score"], val["std"], val["label"], float(target),
                              min_positives=min_positives, bin_size=bin_size, edges=edges)
            thresholds = np.asarray(table.thresholds)
            selected = table.decide(test["score"], test["std"])
        else:
            count = len(edges) + 1
            fit = {"dp": lambda: fit_dp(val["score"], val_bucket, val["label"], float(target), count,
                                        bin_size=bin_size, min_positives=min_positives),
                   "mist": lambda: fit_mist(val["score"], val_bucket, val["label"], float(target), count,
                                            min_positives=min_positives)}[policy]()
            thresholds = fit.thresholds
            selected = np.asarray(test["score"]) >= thresholds[test_bucket]
        precision, recall = precision_recall(selected, test["label"])
        out["targets"].append(float(target))
        out["precision"].append(precision)
        out["recall"].append(recall)
        out["thresholds"].append([float(t) for t in thresholds])
    return out


def recall_at_precision(precision: Sequence[float], recall: Sequence[float], target: float) -> float:
    """The highest recall among curve points whose precision >= target (NaN if none)."""
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    ok = np.isfinite(precision) & np.isfinite(recall) & (precision >= target)
    return float(recall[ok].max()) if ok.any() else math.nan
