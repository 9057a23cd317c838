"""Score thresholds per uncertainty bucket: max recall subject to precision >= a target.

Decision rule everywhere: example i is selected (predicted positive) iff

    score[i] >= thresholds[bucket[i]]

with ``bucket`` from ``tfrs_app.decision.buckets.assign_buckets``; a threshold of +inf selects
nothing in its bucket. Every threshold is an observed validation score, and a cut never splits
tied scores: all examples with the same score (in a bucket) are selected together or not.

Policies (Arora, Merugu, Saladi, Rastogi, "Leveraging Uncertainty Estimates to Improve
Classifier Performance", ICLR 2024):

- ``global``: one threshold for all examples, the baseline.
- ``isotonic``: isotonic calibration of label on score, one threshold on the calibrated
  probability, returned as a score threshold (MIST with a single bucket).
- ``dp``: EW-DPMT, the exact equi-weight dynamic program. Within each bucket the examples are
  sorted by score and cut into consecutive bins of about ``bin_size`` examples; a policy takes
  the top j_b bins of each bucket b. For every total selected count N the DP keeps the most
  selected positives reachable, best[N]; the answer is the feasible N (best[N] >= target * N)
  with the most positives. Exact over the bin grid: O(sum_b J_b * n) with n examples.
- ``mist``: per bucket isotonic regression of label on score, then one global cut c on the
  pooled calibrated probabilities (lowest c whose selection meets the target on the real
  labels); the score threshold of bucket b is its lowest score whose calibrated value >= c.

Ties in the objective: among selections with the most positives, the largest one (the lowest
thresholds) wins, as in ``fit_global``. With one bucket and ``bin_size=1`` the DP therefore
returns exactly ``fit_global``'s threshold.

Fallback: a bucket with fewer than ``min_positives`` validation positives (empty buckets
included) gets no threshold of its own: it uses the global threshold and is listed in
``ThresholdTable.fallback``. The DP and MIST then optimise the other buckets knowing what the
fallback buckets select, so the whole policy meets the target on validation. This is
documented behaviour, not an error.

Everything here is fitted on validation data; measure it on test
(``tfrs_app.evaluation.report``).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

from tfrs_app.decision.buckets import assign_buckets, bucket_edges
from tfrs_app.io import atomic_write_json, read_json

POLICIES = ("global", "isotonic", "dp", "mist")
MAX_BINS_PER_BUCKET = 50  # the default bin_size keeps every bucket at about this many bins or fewer
_NEG = np.iinfo(np.int64).min // 4  # "unreachable" in the DP (stays negative after adding counts)


class BucketFit(NamedTuple):
    """thresholds [num_buckets] float64 (+inf: select nothing); fallback: buckets that use the
    global threshold because they had fewer than ``min_positives`` validation positives."""

    thresholds: np.ndarray
    fallback: tuple[int, ...]


# ----------------------------------------------------------------------------- validation

def check_labels(label: np.ndarray, n: Optional[int] = None, name: str = "label") -> np.ndarray:
    """``label`` [N] as int64 0/1; anything else (NaN, 2, -1, 0.5) is a ValueError giving the
    first bad index. Labels arrive as floats with NaN for "unknown"; rows with unknown labels
    must be dropped by the caller, never silently read as 0."""
    try:
        values = np.asarray(label, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: not numeric ({err})") from None
    if values.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {values.shape}")
    if n is not None and values.size != n:
        raise ValueError(f"{name}: length {values.size} differs from score's {n}")
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        raise ValueError(f"{name}: labels must be exactly 0 or 1; {bad.size} are not, the first at index "
                         f"{bad[0]} ({values[bad[0]]})")
    return values.astype(np.int64)


def _check_finite(values, name: str, n: Optional[int] = None) -> np.ndarray:
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: not numeric ({err})") from None
    if values.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {values.shape}")
    if n is None and values.size == 0:
        raise ValueError(f"{name}: empty; thresholds need at least one validation example")
    if n is not None and values.size != n:
        raise ValueError(f"{name}: length {values.size} differs from score's {n}")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{name}: {bad.size} non-finite values, the first at index {bad[0]} ({values[bad[0]]})")
    return values


def check_target(target_precision: float) -> float:
    if isinstance(target_precision, bool) or not isinstance(target_precision, (int, float, np.floating, np.integer)):
        raise ValueError(f"target_precision: must be a number in (0, 1), got {target_precision!r}")
    target = float(target_precision)
    if not 0.0 < target < 1.0:  # also rejects NaN
        raise ValueError(f"target_precision: must lie strictly between 0 and 1, got {target_precision!r}")
    return target


def validate_inputs(score, label, target_precision=None, std=None, bucket=None, num_buckets: Optional[int] = None):
    """The one check for every fit: score / std / label 1-D, same length, finite; labels 0/1;
    target in (0, 1); buckets integers in [0, num_buckets). Returns float64 score, int64 label,
    then the float target, float64 std, int64 bucket for those given (None otherwise)."""
    score = _check_finite(score, "score")
    n = score.size
    label = check_labels(label, n)
    target = None if target_precision is None else check_target(target_precision)
    if std is not None:
        std = _check_finite(std, "std", n)
    if bucket is not None:
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, (int, np.integer)) or num_buckets < 1:
            raise ValueError(f"num_buckets: must be an integer >= 1, got {num_buckets!r}")
        raw = np.asarray(bucket)
        if raw.ndim != 1 or raw.size != n:
            raise ValueError(f"bucket: expected shape ({n},) like score, got {raw.shape}")
        if raw.size and not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"bucket: expected integer bucket indices, got dtype {raw.dtype}")
        bucket = raw.astype(np.int64)
        bad = np.flatnonzero((bucket < 0) | (bucket >= num_buckets))
        if bad.size:
            raise ValueError(f"bucket: indices must lie in [0, {num_buckets}); the first bad one is at index "
                             f"{bad[0]} ({bucket[bad[0]]})")
    return score, label, target, std, bucket


def bucket_counts(bucket: np.ndarray, label: np.ndarray, num_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(examples [B], positives [B]) per bucket, int64."""
    counts = np.bincount(bucket, minlength=num_buckets).astype(np.int64)
    positives = np.bincount(bucket, weights=label, minlength=num_buckets).round().astype(np.int64)
    return counts, positives


# ----------------------------------------------------------------------------- shared pieces

def _cuts(values: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every tie-respecting cut "select values >= v": (v [G] descending, selected count [G],
    selected positives [G]), one per distinct value (G groups of tied values)."""
    order = np.argsort(-values, kind="stable")
    ordered = values[order]
    ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
    return ordered[ends], ends + 1, np.cumsum(label[order])[ends]


def _meets(positives, count, target: float) -> np.ndarray:
    """precision = positives / count >= target, elementwise; an empty selection never meets it.

    Compared as a correctly rounded quotient, so 14 of 25 meets a target of 0.56 (while
    14 >= 0.56 * 25 would not: 0.56 * 25 is 14.000000000000002 in floating point)."""
    positives = np.asarray(positives, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    precision = np.divide(positives, count, out=np.zeros_like(positives), where=count > 0)
    return (count > 0) & (precision >= target)


def _lowest_feasible_cut(values: np.ndarray, label: np.ndarray, target: float, base_count: int = 0,
                         base_positives: int = 0) -> float:
    """The lowest observed value v such that {values >= v}, plus a fixed selection of
    ``base_count`` examples holding ``base_positives`` positives, has precision >= target;
    +inf if there is none. The lowest feasible cut selects the most positives (max recall)."""
    if values.size == 0:
        return math.inf
    cut_values, count, positives = _cuts(values, label)
    feasible = np.flatnonzero(_meets(positives + base_positives, count + base_count, target))
    return float(cut_values[feasible[-1]]) if feasible.size else math.inf


def _isotonic(score: np.ndarray, label: np.ndarray) -> np.ndarray:
    """P(label = 1 | score) [N] by isotonic regression; non-decreasing in score and equal for
    tied scores (sklearn averages the labels of tied scores before fitting)."""
    if score.size == 0:
        return np.zeros(0)
    if np.unique(score).size < 2:
        return np.full(score.size, label.mean(), dtype=np.float64)
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(increasing=True, out_of_bounds="clip")
    return model.fit_transform(score, label.astype(np.float64)).astype(np.float64)


def _fallback_setup(score, bucket, label, target, num_buckets, min_positives):
    """Buckets below ``min_positives`` take the global threshold; returns (thresholds [B] with
    those set and the rest +inf, fallback tuple, mask of examples in fallback buckets,
    fixed selected count, fixed selected positives)."""
    if isinstance(min_positives, bool) or not isinstance(min_positives, (int, np.integer)) or min_positives < 0:
        raise ValueError(f"min_positives: must be an integer >= 0, got {min_positives!r}")
    _, positives = bucket_counts(bucket, label, num_buckets)
    fallback = np.flatnonzero(positives < min_positives)
    thresholds = np.full(num_buckets, math.inf)
    in_fallback = np.isin(bucket, fallback)
    if fallback.size == 0:
        return thresholds, (), in_fallback, 0, 0
    thresholds[fallback] = _lowest_feasible_cut(score, label, target)
    fixed = in_fallback & (score >= thresholds[bucket])
    return thresholds, tuple(int(b) for b in fallback), in_fallback, int(fixed.sum()), int(label[fixed].sum())


# ----------------------------------------------------------------------------- policies

def fit_global(score: np.ndarray, label: np.ndarray, target_precision: float) -> float:
    """The single score threshold of max recall subject to precision >= target on (score [N],
    label [N]): the lowest observed score whose selection {score >= t} meets the target, ties
    never split; +inf when no threshold does."""
    score, label, target, _, _ = validate_inputs(score, label, target_precision)
    return _lowest_feasible_cut(score, label, target)


def fit_isotonic(score: np.ndarray, label: np.ndarray, target_precision: float) -> float:
    """Isotonic calibration of label on score, then one cut on the calibrated probability,
    returned as a score threshold: ``fit_mist`` with a single bucket."""
    score = np.asarray(score)
    fit = fit_mist(score, np.zeros(score.shape, dtype=np.int64), label, target_precision, num_buckets=1,
                   min_positives=0)
    return float(fit.thresholds[0])


def fit_mist(score: np.ndarray, bucket: np.ndarray, label: np.ndarray, target_precision: float, num_buckets: int,
             min_positives: int = 20) -> BucketFit:
    """MIST: per-bucket isotonic regression of label on score, one global cut c on the pooled
    calibrated probabilities, mapped back to per-bucket score thresholds.

    score, label, bucket: [N] validation arrays, bucket in [0, num_buckets). The cut c is the
    lowest calibrated value whose pooled selection {calibrated >= c} (plus what the fallback
    buckets select) has precision >= target on the real labels. Calibration is non-decreasing
    in score within a bucket, so {calibrated >= c} is {score >= t_b} with t_b the bucket's
    lowest score whose calibrated value reaches c (+inf if none).
    """
    score, label, target, _, bucket = validate_inputs(score, label, target_precision, bucket=bucket,
                                                      num_buckets=num_buckets)
    thresholds, fallback, in_fallback, base_count, base_positives = _fallback_setup(
        score, bucket, label, target, num_buckets, min_positives)
    own = [b for b in range(num_buckets) if b not in fallback]
    calibrated = np.full(score.size, -math.inf)
    for b in own:
        rows = bucket == b
        calibrated[rows] = _isotonic(score[rows], label[rows])
    pooled = ~in_fallback
    cut = _lowest_feasible_cut(calibrated[pooled], label[pooled], target, base_count, base_positives)
    for b in own:
        rows = bucket == b
        chosen = score[rows][calibrated[rows] >= cut]
        thresholds[b] = float(chosen.min()) if chosen.size else math.inf
    return BucketFit(thresholds, fallback)


def default_bin_size(bucket_sizes: np.ndarray) -> int:
    """The smallest bin size that cuts the largest bucket into at most MAX_BINS_PER_BUCKET bins."""
    largest = int(np.max(bucket_sizes)) if np.size(bucket_sizes) else 0
    return max(1, math.ceil(largest / MAX_BINS_PER_BUCKET))


def _bins(score: np.ndarray, label: np.ndarray, bin_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One bucket cut into top-j options: (lowest score of the top j bins [J], selected count
    [J], selected positives [J]) for j = 1..J. Bins are consecutive in descending score; bin k
    ends at the first tie-group end whose cumulative count reaches k * bin_size, so bins hold
    about ``bin_size`` examples and tied scores are never split."""
    cut_values, count, positives = _cuts(score, label)
    marks = np.arange(1, math.ceil(count[-1] / bin_size) + 1) * bin_size
    ends = np.unique(np.minimum(np.searchsorted(count, marks, side="left"), count.size - 1))
    return cut_values[ends], count[ends], positives[ends]


def fit_dp(score: np.ndarray, bucket: np.ndarray, label: np.ndarray, target_precision: float, num_buckets: int,
           bin_size: Optional[int] = None, min_positives: int = 20) -> BucketFit:
    """EW-DPMT: the exact max-positives choice of top-j_b bins per bucket subject to precision
    >= target, on validation (score [N], bucket [N] in [0, num_buckets), label [N]).

    bin_size: examples per bin (default ``default_bin_size``: at most ~50 bins per bucket).
    DP state: N, the number of examples selected in the buckets seen so far; best[N] is the
    most positives any choice of j's reaches with exactly N selected (or unreachable). Adding a
    bucket with options (n_j, p_j) is best'[N] = max_j best[N - n_j] + p_j, one shifted numpy
    maximum per option. The final N is the feasible one with the most positives (then the
    largest N); the j_b are recovered by backtracking, and bucket b's threshold is the lowest
    score of its top j_b bins (+inf for j_b = 0).
    """
    score, label, target, _, bucket = validate_inputs(score, label, target_precision, bucket=bucket,
                                                      num_buckets=num_buckets)
    if bin_size is not None and (isinstance(bin_size, bool) or not isinstance(bin_size, (int, np.integer))
                                 or bin_size < 1):
        raise ValueError(f"bin_size: must be an integer >= 1, got {bin_size!r}")
    thresholds, fallback, _, base_count, base_positives = _fallback_setup(
        score, bucket, label, target, num_buckets, min_positives)
    counts, _ = bucket_counts(bucket, label, num_buckets)
    own = [b for b in range(num_buckets) if b not in fallback and counts[b] > 0]
    if not own:
        return BucketFit(thresholds, fallback)
    size = int(bin_size) if bin_size is not None else default_bin_size(counts[own])

    best = np.zeros(1, dtype=np.int64)  # best[N] over the buckets so far; N = 0 only, 0 positives
    options, choices = [], []
    for b in own:
        rows = bucket == b
        cut_values, count, positives = _bins(score[rows], label[rows], size)
        option_count = np.r_[0, count]
        option_positives = np.r_[0, positives]
        new = np.full(best.size + int(count[-1]), _NEG, dtype=np.int64)
        choice = np.zeros(new.size, dtype=np.int32)
        for j in range(option_count.size):
            window = slice(int(option_count[j]), int(option_count[j]) + best.size)
            candidate = best + option_positives[j]
            better = candidate > new[window]
            new[window] = np.where(better, candidate, new[window])
            choice[window] = np.where(better, j, choice[window])
        best = new
        options.append((cut_values, option_count))
        choices.append(choice)

    selected = np.arange(best.size)
    feasible = np.flatnonzero((best >= 0) & _meets(best + base_positives, selected + base_count, target))
    if feasible.size == 0:
        return BucketFit(thresholds, fallback)  # nothing meets the target: select nothing of our own
    top = best[feasible].max()
    n_selected = int(feasible[best[feasible] == top].max())
    for b, (cut_values, option_count), choice in zip(own[::-1], options[::-1], choices[::-1]):
        j = int(choice[n_selected])
        thresholds[b] = float(cut_values[j - 1]) if j > 0 else math.inf
        n_selected -= int(option_count[j])
    return BucketFit(thresholds, fallback)


# ----------------------------------------------------------------------------- the table

def _encode_float(value: float):
    """JSON-safe float: finite values as numbers (repr round-trips exactly), others as strings."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _decode_float(value, where: str) -> float:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number (or 'inf', '-inf', 'nan'), got {value!r}")
    return float(value)


def _decode_int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class ThresholdTable:
    """Per-bucket score thresholds for one head, fitted on validation data.

    edges [B-1]: inner std edges (``bucket_edges``); thresholds [B]: score threshold per bucket
    (+inf: select nothing); counts / positives [B]: the validation examples and positives each
    threshold rests on; fallback: buckets using the global threshold (too few positives);
    val_precision / val_recall: of the whole policy on validation (NaN when undefined).
    """

    head: str
    policy: str
    target_precision: float
    edges: tuple[float, ...]
    thresholds: tuple[float, ...]
    counts: tuple[int, ...]
    positives: tuple[int, ...]
    fallback: tuple[int, ...] = field(default=())
    val_precision: float = math.nan
    val_recall: float = math.nan

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"policy: must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        check_target(self.target_precision)
        if len(self.thresholds) != len(self.edges) + 1:
            raise ValueError(f"thresholds: expected len(edges) + 1 = {len(self.edges) + 1} values, "
                             f"got {len(self.thresholds)}")
        if any(not b > a for a, b in zip(self.edges, self.edges[1:])) or not all(map(math.isfinite, self.edges)):
            raise ValueError(f"edges: must be finite and strictly increasing, got {list(self.edges)}")
        if any(math.isnan(t) for t in self.thresholds):
            raise ValueError(f"thresholds: NaN is not a threshold (use inf to select nothing): {list(self.thresholds)}")
        for name in ("counts", "positives"):
            if len(getattr(self, name)) != len(self.thresholds):
                raise ValueError(f"{name}: expected {len(self.thresholds)} values, got {len(getattr(self, name))}")
        if any(not 0 <= b < len(self.thresholds) for b in self.fallback):
            raise ValueError(f"fallback: bucket indices must lie in [0, {len(self.thresholds)}), "
                             f"got {list(self.fallback)}")

    @property
    def num_buckets(self) -> int:
        return len(self.thresholds)

    def bucket(self, std: np.ndarray) -> np.ndarray:
        """Bucket [N] int64 of each std [N] (``assign_buckets``: searchsorted side="right")."""
        return assign_buckets(std, np.asarray(self.edges, dtype=np.float64))

    def select(self, score: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        """score[i] >= thresholds[bucket[i]], [N] bool, for buckets already assigned."""
        return np.asarray(score, dtype=np.float64) >= np.asarray(self.thresholds, dtype=np.float64)[bucket]

    def decide(self, score: np.ndarray, std: np.ndarray) -> np.ndarray:
        """[N] bool: selected iff score >= the threshold of the example's std bucket."""
        return self.select(score, self.bucket(std))

    def to_dict(self) -> dict:
        """JSON-safe: infinities and NaN as the strings 'inf', '-inf', 'nan'; finite floats
        exactly (JSON writes their shortest round-tripping repr)."""
        return {
            "head": self.head,
            "policy": self.policy,
            "target_precision": float(self.target_precision),
            "edges": [float(e) for e in self.edges],
            "thresholds": [_encode_float(t) for t in self.thresholds],
            "counts": [int(c) for c in self.counts],
            "positives": [int(p) for p in self.positives],
            "fallback": [int(b) for b in self.fallback],
            "val_precision": _encode_float(self.val_precision),
            "val_recall": _encode_float(self.val_recall),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "threshold table") -> "ThresholdTable":
        """Inverse of ``to_dict``; a missing or malformed field is a ValueError naming it."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")

        def get(name):
            if name not in data:
                raise ValueError(f"{source}: missing field {name!r}")
            return data[name]

        def get_list(name):
            value = get(name)
            if not isinstance(value, list):
                raise ValueError(f"{source}: field {name!r} must be a list, got {value!r}")
            return value

        for name in ("head", "policy"):
            if not isinstance(get(name), str):
                raise ValueError(f"{source}: field {name!r} must be a string, got {get(name)!r}")
        try:
            return cls(
                head=data["head"],
                policy=data["policy"],
                target_precision=_decode_float(get("target_precision"), f"{source}: field 'target_precision'"),
                edges=tuple(_decode_float(v, f"{source}: field 'edges'") for v in get_list("edges")),
                thresholds=tuple(_decode_float(v, f"{source}: field 'thresholds'") for v in get_list("thresholds")),
                counts=tuple(_decode_int(v, f"{source}: field 'counts'") for v in get_list("counts")),
                positives=tuple(_decode_int(v, f"{source}: field 'positives'") for v in get_list("positives")),
                fallback=tuple(_decode_int(v, f"{source}: field 'fallback'") for v in get_list("fallback")),
                val_precision=_decode_float(get("val_precision"), f"{source}: field 'val_precision'"),
                val_recall=_decode_float(get("val_recall"), f"{source}: field 'val_recall'"),
            )
        except ValueError as err:
            message = str(err)
            raise ValueError(message if message.startswith(source) else f"{source}: {message}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Written atomically (temporary file renamed into place)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ThresholdTable":
        try:
            data = read_json(path)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a valid threshold table JSON file ({err})") from None
        return cls.from_dict(data, source=str(path))


def fit_table(head: str, policy: str, score: np.ndarray, std: np.ndarray, label: np.ndarray,
              target_precision: float, num_buckets: int = 5, min_positives: int = 20,
              bin_size: Optional[int] = None, edges: Optional[np.ndarray] = None) -> ThresholdTable:
    """The one entry point: validation (score [N], std [N], label [N]) -> a ThresholdTable.

    Edges are the std quantiles of these examples unless ``edges`` is given (e.g. to share one
    set of edges between policies); ``num_buckets`` is then ignored. ``global`` and
    ``isotonic`` repeat their single threshold in every bucket, so ``decide`` is the same rule
    for every policy. min_positives and bin_size apply to ``dp`` and ``mist``.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy: must be one of {', '.join(POLICIES)}, got {policy!r}")
    score, label, target, std, _ = validate_inputs(score, label, target_precision, std=std)
    if edges is None:
        edges = bucket_edges(std, num_buckets)
    edges = np.asarray(edges, dtype=np.float64).reshape(-1)
    bucket = assign_buckets(std, edges)
    count = edges.size + 1
    if policy == "global":
        fit = BucketFit(np.full(count, fit_global(score, label, target)), ())
    elif policy == "isotonic":
        fit = BucketFit(np.full(count, fit_isotonic(score, label, target)), ())
    elif policy == "dp":
        fit = fit_dp(score, bucket, label, target, count, bin_size=bin_size, min_positives=min_positives)
    else:
        fit = fit_mist(score, bucket, label, target, count, min_positives=min_positives)
    counts, positives = bucket_counts(bucket, label, count)
    selected = score >= fit.thresholds[bucket]
    true_positives = int(label[selected].sum())
    return ThresholdTable(
        head=head, policy=policy, target_precision=target,
        edges=tuple(float(e) for e in edges),
        thresholds=tuple(float(t) for t in fit.thresholds),
        counts=tuple(int(c) for c in counts), positives=tuple(int(p) for p in positives),
        fallback=tuple(fit.fallback),
        val_precision=true_positives / int(selected.sum()) if selected.any() else math.nan,
        val_recall=true_positives / int(label.sum()) if label.any() else math.nan,
    )
