"""Paired bootstrap of precision and recall for several decision policies on one test set.

Paired: every resample of the example indices is shared by all policies, so the difference
between two policies is measured on the same examples each time. Their disagreements are few
(they select mostly the same examples), which makes the CI of a difference much narrower than
the two separate CIs suggest.

That narrowness cuts both ways: thresholds fitted on validation are held fixed here, so two
policies at different operating points differ "significantly" in recall even when neither is
better (one simply selects more, at a lower precision). ``matched_gain`` answers the real
question instead: on each resample, how much recall a policy has above the baseline score's
best threshold at the policy's own precision.

Vectorised: a resample is a vector of multiplicities c [N] (how often each example was
drawn), so its counts are c @ indicator vectors. ``num_samples`` resamples are a [S, N] count
matrix times an [N, 1 + 2P] matrix of (positive, selected positive, selected) indicators,
done in chunks to bound memory.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Optional

import numpy as np

from tfrs_app.decision.thresholds import check_labels

_CHUNK_ENTRIES = 4_000_000  # resample-count entries held at once (~32 MB of int64 indices)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


def _interval(values: np.ndarray, alpha: float) -> list[float]:
    """Percentile interval [alpha/2, 1 - alpha/2] ignoring NaN resamples ([nan, nan] if all are)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [math.nan, math.nan]
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return [float(low), float(high)]


def _resample_chunks(n: int, num_samples: int, seed: int, dtype):
    """Yields (start, counts [rows, N]): how often each example is drawn in resamples
    start..start+rows-1, each resample N draws with replacement."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(num_samples, _CHUNK_ENTRIES // n))
    for start in range(0, num_samples, chunk):
        rows = min(chunk, num_samples - start)
        drawn = rng.integers(0, n, size=(rows, n))
        drawn += (np.arange(rows) * n)[:, None]
        yield start, np.bincount(drawn.ravel(), minlength=rows * n).reshape(rows, n).astype(dtype)


def _baseline_curves(counts: np.ndarray, order: np.ndarray, ends: np.ndarray,
                     label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The baseline score's PR curve on each resample (row of counts [S, N]): (precision [S, G],
    recall [S, G]) at every score threshold, G groups of tied scores; order: example indices by
    descending score, ends: last position of each tie group in that order (a threshold never
    splits ties). Precision is NaN where a threshold selects nothing in the resample."""
    ordered = counts[:, order]  # counts' dtype: float32 below 2^24 examples, where its sums are exact
    selected = np.cumsum(ordered, axis=1)[:, ends].astype(np.float64)
    ordered *= label[order].astype(ordered.dtype)
    hits = np.cumsum(ordered, axis=1)[:, ends].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / selected, hits / hits[:, -1:]


def _recall_at(curve_precision: np.ndarray, curve_recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Per row: the highest curve recall whose curve precision >= precision[s]; NaN where
    precision[s] is NaN (the policy selected nothing) or where no point of the curve reaches
    it (the comparison is undefined there, and a 0 would fake a gain of the policy's whole recall)."""
    with np.errstate(invalid="ignore"):
        ok = curve_precision >= precision[:, None]  # False where either side is NaN
    best = np.where(ok, curve_recall, -np.inf).max(axis=1)
    return np.where(np.isnan(precision) | ~np.isfinite(best), np.nan, best)


def paired_bootstrap(label: np.ndarray, decisions: Mapping[str, np.ndarray], baseline: str, num_samples: int = 1000,
                     seed: int = 0, alpha: float = 0.05, baseline_score: Optional[np.ndarray] = None) -> dict:
    """Precision and recall of each policy with percentile CIs, and paired differences against
    ``baseline``.

    label: [N] 0/1; decisions: {policy: [N] bool selection}. Returns
    {"n", "num_samples", "alpha", "seed", "baseline", "policies": {policy: {
        "precision", "recall"                      (points on the full data),
        "precision_ci", "recall_ci"                ([low, high] percentile intervals),
        and for every policy but the baseline:
        "recall_diff": {"point", "ci"}, "precision_diff": {"point", "ci"} (policy - baseline),
        "significant": the recall_diff CI excludes 0,
        and with ``baseline_score``:
        "matched_gain": {"point", "ci", "significant"}}}}.

    ``recall_diff`` compares two fixed operating points: at N in the tens of thousands any two
    different thresholds differ "significantly", in recall and in precision alike. With
    ``baseline_score`` [N] (the score the baseline thresholds), each resample also measures
    how far the policy lies above the baseline's PR curve on that resample: matched_gain =
    policy recall - the highest recall of any score threshold whose precision on the resample
    is >= the policy's precision there (the baseline gets every threshold, chosen with
    hindsight, so this favours it); ``significant`` there means the CI lies above 0.
    Precision of an empty selection is NaN (resamples where it is undefined are left out of
    the intervals).
    """
    label = check_labels(label)
    n = label.size
    if n == 0:
        raise ValueError("label: empty; nothing to bootstrap")
    if not decisions:
        raise ValueError("decisions: no policy given")
    if baseline not in decisions:
        raise ValueError(f"baseline: {baseline!r} is not one of the decisions ({', '.join(decisions)})")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples: must be an integer >= 1, got {num_samples!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie strictly between 0 and 1, got {alpha!r}")
    names = list(decisions)
    selections = []
    for name in names:
        selected = np.asarray(decisions[name])
        if selected.dtype != bool or selected.shape != (n,):
            raise ValueError(f"decisions[{name!r}]: expected a bool array of shape ({n},), got "
                             f"{selected.dtype} {selected.shape}")
        selections.append(selected)
    others = [name for name in names if name != baseline]
    if baseline_score is not None:
        baseline_score = np.asarray(baseline_score, dtype=np.float64)
        if baseline_score.shape != (n,) or not np.all(np.isfinite(baseline_score)):
            raise ValueError(f"baseline_score: expected {n} finite scores, got shape {baseline_score.shape}")
        order = np.argsort(-baseline_score, kind="stable")
        ordered = baseline_score[order]
        ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])

    p = len(names)
    dtype = np.float32 if n < 2 ** 24 else np.float64  # float32 sums of integer counts are exact below 2^24
    indicators = np.stack([label] + [d & (label == 1) for d in selections] + selections, axis=1).astype(dtype)
    counts = np.empty((num_samples, 1 + 2 * p))
    matched_recall = {name: np.empty(num_samples) for name in others}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for start, weights in _resample_chunks(n, int(num_samples), seed, dtype):
            rows = slice(start, start + weights.shape[0])
            counts[rows] = weights @ indicators
            if baseline_score is not None:
                curve = _baseline_curves(weights, order, ends, label)
                for name in others:
                    i = names.index(name)
                    precision_here = _ratio(counts[rows, 1 + i], counts[rows, 1 + p + i])
                    matched_recall[name][rows] = _recall_at(*curve, precision_here)
        positives = counts[:, 0]
        precision = {name: _ratio(counts[:, 1 + i], counts[:, 1 + p + i]) for i, name in enumerate(names)}
        recall = {name: _ratio(counts[:, 1 + i], positives) for i, name in enumerate(names)}

    if baseline_score is not None:
        full_curve = _baseline_curves(np.ones((1, n), dtype=dtype), order, ends, label)
    total_positives = int(label.sum())
    points = {}
    for name, selected in zip(names, selections):
        hits = int(label[selected].sum())
        points[name] = (hits / int(selected.sum()) if selected.any() else math.nan,
                        hits / total_positives if total_positives else math.nan)

    policies = {}
    for name in names:
        entry = {"precision": points[name][0], "recall": points[name][1],
                 "precision_ci": _interval(precision[name], alpha), "recall_ci": _interval(recall[name], alpha)}
        if name != baseline:
            recall_ci = _interval(recall[name] - recall[baseline], alpha)
            entry["recall_diff"] = {"point": points[name][1] - points[baseline][1], "ci": recall_ci}
            entry["precision_diff"] = {"point": points[name][0] - points[baseline][0],
                                       "ci": _interval(precision[name] - precision[baseline], alpha)}
            entry["significant"] = bool(recall_ci[0] > 0 or recall_ci[1] < 0)
            if baseline_score is not None:
                full = _recall_at(*full_curve, np.array([points[name][0]], dtype=np.float64))[0]
                gain_ci = _interval(recall[name] - matched_recall[name], alpha)
                entry["matched_gain"] = {"point": float(points[name][1] - full), "ci": gain_ci,
                                         "significant": bool(gain_ci[0] > 0)}
        policies[name] = entry
    return {"n": int(n), "num_samples": int(num_samples), "alpha": float(alpha), "seed": int(seed),
            "baseline": baseline, "policies": policies}
