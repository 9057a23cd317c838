import itertools
import json
import math

import numpy as np
import pytest

from tfrs_app.decision.buckets import assign_buckets
from tfrs_app.decision.thresholds import (ThresholdTable, fit_dp, fit_global, fit_isotonic, fit_mist, fit_table)

# ----------------------------------------------------------------------------- global


def test_fit_global_worked_example():
    score = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5])
    label = np.array([1, 1, 0, 1, 0, 1])
    # cuts (ties together): 0.9 -> 1/1, 0.8 -> 2/3, 0.7 -> 3/4, 0.6 -> 3/5, 0.5 -> 4/6
    assert fit_global(score, label, 0.75) == 0.7  # lowest cut with precision >= 0.75
    assert fit_global(score, label, 0.7) == 0.7  # 0.8 (2/3) fails; splitting the tie (2/2) is not allowed
    assert fit_global(score, label, 0.66) == 0.5  # 4/6 = 0.667 >= 0.66 at the lowest cut
    assert fit_global(score, label, 0.99) == 0.9
    assert fit_global(score, np.zeros(6), 0.5) == math.inf  # no positive: select nothing


def test_fit_global_precision_exactly_at_target():
    score = np.arange(25, 0, -1) / 25.0
    label = np.array([1] * 14 + [0] * 11)
    # 14 of 25 is exactly 0.56, but 14 >= 0.56 * 25 is False in floating point (14.000000000000002)
    assert fit_global(score, label, 0.56) == 1 / 25
    score, label = np.arange(10, 0, -1) / 10.0, np.array([1] * 7 + [0] * 3)
    assert fit_global(score, label, 0.7) == 0.1  # 7 of 10


# ----------------------------------------------------------------------------- DP vs brute force

def _selected_positives(score, bucket, label, thresholds):
    selected = score >= thresholds[bucket]
    return int(selected.sum()), int(label[selected].sum())


def _brute_force(score, bucket, label, target, num_buckets, cut_sizes):
    """Max selected positives over every combination of per-bucket top-k cuts, k in cut_sizes[b]."""
    tops = []
    for b in range(num_buckets):
        rows = np.flatnonzero(bucket == b)
        ordered = label[rows[np.argsort(-score[rows], kind="stable")]]
        tops.append([(k, int(ordered[:k].sum())) for k in cut_sizes[b]])
    best = None
    for combo in itertools.product(*tops):
        n = sum(k for k, _ in combo)
        p = sum(q for _, q in combo)
        if n > 0 and p / n >= target and (best is None or p > best):
            best = p
    return best


@pytest.mark.parametrize("case", range(30))
def test_fit_dp_matches_brute_force(case):
    rng = np.random.default_rng(case)
    num_buckets = int(rng.integers(2, 4))
    bin_size = int(rng.integers(1, 4))
    sizes = [int(rng.integers(3, 7)) * bin_size - int(rng.integers(0, bin_size)) for _ in range(num_buckets)]
    bucket = np.repeat(np.arange(num_buckets), sizes)
    score = rng.permutation(np.arange(bucket.size)) / bucket.size  # distinct scores
    slope = rng.uniform(0.5, 3.0, num_buckets)  # how informative the score is, per bucket
    label = (rng.random(bucket.size) < 1 / (1 + np.exp(-slope[bucket] * (4 * score - 2)))).astype(np.int64)
    target = float(rng.uniform(0.5, 0.9))
    # bins: consecutive chunks of bin_size from the top, the last one possibly shorter
    cut_sizes = [sorted({0, *range(bin_size, n, bin_size), n}) for n in sizes]
    expected = _brute_force(score, bucket, label, target, num_buckets, cut_sizes)

    fit = fit_dp(score, bucket, label, target, num_buckets, bin_size=bin_size, min_positives=0)
    n, positives = _selected_positives(score, bucket, label, fit.thresholds)
    if expected is None:
        assert n == 0 and np.all(np.isinf(fit.thresholds))
    else:
        assert positives == expected
        assert positives / n >= target
    for b in range(num_buckets):  # every finite threshold is a cut on the bin grid of its bucket
        if np.isfinite(fit.thresholds[b]):
            assert int(((bucket == b) & (score >= fit.thresholds[b])).sum()) in cut_sizes[b]


@pytest.mark.parametrize("case", range(10))
def test_fit_dp_with_tied_scores_matches_brute_force(case):
    rng = np.random.default_rng(100 + case)
    bucket = np.repeat([0, 1], [int(rng.integers(6, 12)), int(rng.integers(6, 12))])
    score = rng.integers(0, 5, bucket.size) / 4.0  # five values: many ties
    label = (rng.random(bucket.size) < 0.2 + 0.6 * score).astype(np.int64)
    target = float(rng.uniform(0.5, 0.85))
    # with bin_size 1 the cuts are exactly the tie groups: thresholds at each distinct score
    cut_sizes = [sorted({0, *[int(((bucket == b) & (score >= v)).sum()) for v in score[bucket == b]]})
                 for b in (0, 1)]
    expected = _brute_force(score, bucket, label, target, 2, cut_sizes)
    fit = fit_dp(score, bucket, label, target, 2, bin_size=1, min_positives=0)
    n, positives = _selected_positives(score, bucket, label, fit.thresholds)
    assert positives == (expected or 0)
    if n:
        assert positives / n >= target
    # larger bins never split ties either: whatever the DP selects is feasible as counted
    fit = fit_dp(score, bucket, label, target, 2, bin_size=3, min_positives=0)
    n, positives = _selected_positives(score, bucket, label, fit.thresholds)
    assert n == 0 or positives / n >= target


def test_fit_dp_single_bucket_unit_bins_is_fit_global():
    rng = np.random.default_rng(5)
    score = np.round(rng.random(400), 2)
    label = (rng.random(400) < score).astype(int)
    for target in (0.6, 0.75, 0.9):
        fit = fit_dp(score, np.zeros(400, dtype=int), label, target, 1, bin_size=1, min_positives=0)
        assert fit.thresholds[0] == fit_global(score, label, target)


def test_fit_dp_default_bins_and_speed_sized_input():
    rng = np.random.default_rng(0)
    n = 20000
    bucket = rng.integers(0, 5, n)
    score = rng.random(n)
    label = (rng.random(n) < score ** (1 + bucket)).astype(int)
    fit = fit_dp(score, bucket, label, 0.8, 5)
    assert fit.thresholds.shape == (5,) and fit.fallback == ()
    n_sel, positives = _selected_positives(score, bucket, label, fit.thresholds)
    assert positives / n_sel >= 0.8
    global_positives = int(label[score >= fit_global(score, label, 0.8)].sum())
    assert positives >= global_positives  # the buckets differ in reliability: the DP gains


# ----------------------------------------------------------------------------- MIST

def _mist_case():
    # bucket 0: labels 0 1 0 1 -> isotonic 0, .5, .5, 1 ; bucket 1: labels 1 0 0 1 -> 1/3, 1/3, 1/3, 1
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    bucket = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    label = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    return score, bucket, label


@pytest.mark.parametrize("target, expected", [
    (0.7, [0.2, 0.8]),  # c = 0.5: {b0 .2 .3 .4, b1 .8} -> 3/4; c = 1/3 would add 1 of 3 -> 4/7
    (0.9, [0.4, 0.8]),  # c = 1: the two top examples, 2/2
    (0.5, [0.1, 0.5]),  # c = 0: everything, 4/8
])
def test_fit_mist_worked_example(target, expected):
    score, bucket, label = _mist_case()
    fit = fit_mist(score, bucket, label, target, 2, min_positives=0)
    assert fit.thresholds.tolist() == expected
    assert fit.fallback == ()


def test_mist_beats_global_on_the_worked_example():
    score, bucket, label = _mist_case()
    # globally: .8 -> 1/1, .7 -> 1/2, .6 -> 1/3, .5 -> 2/4, .4 -> 3/5, ... only the top cut reaches 0.7
    assert fit_global(score, label, 0.7) == 0.8


def test_fit_isotonic_is_single_bucket_mist():
    score = np.array([0.1, 0.2, 0.3, 0.4])
    label = np.array([0, 1, 0, 1])
    # isotonic 0, .5, .5, 1: c = .5 selects 2 of 3 (>= 0.6), c = 0 would be 2 of 4
    assert fit_isotonic(score, label, 0.6) == 0.2
    assert fit_isotonic(score, label, 0.7) == 0.4
    assert fit_global(score, label, 0.6) == 0.2


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("label, field, index", [
    ([0, 1, np.nan, 1], "label", 2),
    ([0, 1, 1, 2], "label", 3),
    ([0, -1, 1, 1], "label", 1),
])
def test_bad_labels_name_the_field_and_index(label, field, index):
    score = np.array([0.1, 0.2, 0.3, 0.4])
    for call in (lambda: fit_global(score, label, 0.8),
                 lambda: fit_dp(score, np.zeros(4, dtype=int), label, 0.8, 1),
                 lambda: fit_mist(score, np.zeros(4, dtype=int), label, 0.8, 1),
                 lambda: fit_table("h", "dp", score, score, label, 0.8)):
        with pytest.raises(ValueError, match=rf"{field}.*index {index}"):
            call()


@pytest.mark.parametrize("target", [0, 0.0, 1, 1.0, 1.2, -0.1, float("nan")])
def test_bad_target_precision(target):
    with pytest.raises(ValueError, match="target_precision"):
        fit_global(np.array([0.1, 0.2]), np.array([0, 1]), target)
    with pytest.raises(ValueError, match="target_precision"):
        fit_table("h", "mist", np.array([0.1, 0.2]), np.array([0.1, 0.2]), np.array([0, 1]), target)


def test_empty_and_mismatched_inputs():
    empty = np.array([])
    with pytest.raises(ValueError, match="score"):
        fit_global(empty, empty, 0.8)
    with pytest.raises(ValueError, match="score"):
        fit_table("h", "dp", empty, empty, empty, 0.8)
    with pytest.raises(ValueError, match="label"):
        fit_global(np.array([0.1, 0.2]), np.array([1]), 0.8)
    with pytest.raises(ValueError, match="std"):
        fit_table("h", "dp", np.array([0.1, 0.2]), np.array([0.1]), np.array([0, 1]), 0.8)
    with pytest.raises(ValueError, match="score"):
        fit_global(np.array([0.1, np.nan]), np.array([0, 1]), 0.8)
    with pytest.raises(ValueError, match="bucket"):
        fit_dp(np.array([0.1, 0.2]), np.array([0, 3]), np.array([0, 1]), 0.8, 2)
    with pytest.raises(ValueError, match="policy"):
        fit_table("h", "best", np.array([0.1, 0.2]), np.array([0.1, 0.2]), np.array([0, 1]), 0.8)


def test_bucket_with_few_positives_falls_back_to_global():
    rng = np.random.default_rng(1)
    n = 3000
    std = np.r_[np.full(2000, 0.05), np.full(1000, 0.2)]
    score = rng.random(n)
    label = np.r_[(rng.random(2000) < score[:2000]), np.zeros(1000)].astype(int)
    label[2000:2003] = 1  # the high-std bucket has 3 positives
    edges = np.array([0.1])
    bucket = assign_buckets(std, edges)
    global_threshold = fit_global(score, label, 0.8)
    for fit in (fit_dp(score, bucket, label, 0.8, 2, min_positives=20),
                fit_mist(score, bucket, label, 0.8, 2, min_positives=20)):
        assert fit.fallback == (1,)
        assert fit.thresholds[1] == global_threshold
        assert np.isfinite(fit.thresholds[0]) and fit.thresholds[0] != global_threshold
    table = fit_table("h", "dp", score, std, label, 0.8, min_positives=20, edges=edges)
    assert table.fallback == (1,) and table.thresholds[1] == global_threshold
    assert table.counts == (2000, 1000) and table.positives == (int(label[:2000].sum()), 3)
    assert table.val_precision >= 0.8  # the DP accounts for what the fallback bucket selects
    assert fit_table("h", "dp", score, std, label, 0.8, min_positives=3, edges=edges).fallback == ()


# ----------------------------------------------------------------------------- the table

def _table(policy="dp", target=0.8, seed=0, n=3000):
    rng = np.random.default_rng(seed)
    std = rng.uniform(0, 0.3, n)
    score = rng.random(n)
    label = (rng.random(n) < score ** (1 + 5 * std)).astype(int)
    return fit_table("engagement", policy, score, std, label, target, num_buckets=4), score, std, label


@pytest.mark.parametrize("policy", ["global", "isotonic", "dp", "mist"])
def test_fit_table_fields_and_decide(policy):
    table, score, std, label = _table(policy)
    assert table.policy == policy and len(table.edges) == 3 and len(table.thresholds) == 4
    assert sum(table.counts) == score.size and sum(table.positives) == label.sum()
    decided = table.decide(score, std)
    expected = score >= np.asarray(table.thresholds)[np.searchsorted(table.edges, std, side="right")]
    assert np.array_equal(decided, expected)
    assert table.val_precision == pytest.approx(label[decided].mean())
    assert table.val_recall == pytest.approx(label[decided].sum() / label.sum())
    assert table.val_precision >= 0.8
    if policy in ("global", "isotonic"):
        assert len(set(table.thresholds)) == 1


def test_decide_uses_the_bucket_above_an_edge():
    table = ThresholdTable(head="h", policy="dp", target_precision=0.9, edges=(0.1,), thresholds=(0.5, math.inf),
                           counts=(1, 1), positives=(1, 1))
    assert table.decide(np.array([0.6, 0.6, 0.6, 0.4]), np.array([0.05, 0.1, 0.2, 0.0])).tolist() == \
        [True, False, False, False]


def test_table_round_trip_is_exact(tmp_path):
    table, score, std, _ = _table("mist")
    table = ThresholdTable(**{**table.__dict__, "thresholds": (0.1 + 0.2,) + table.thresholds[1:-1] + (math.inf,),
                              "val_recall": 1 / 3})
    path = tmp_path / "thresholds" / "engagement.json"
    table.save(path)
    assert json.loads(path.read_text())["thresholds"][-1] == "inf"
    loaded = ThresholdTable.load(path)
    assert loaded == table  # exact float equality, inf included
    assert loaded.thresholds[0] == 0.1 + 0.2
    assert np.array_equal(loaded.decide(score, std), table.decide(score, std))
    assert ThresholdTable.from_dict(table.to_dict()) == table
    nan_table = ThresholdTable(**{**table.__dict__, "val_precision": math.nan})
    assert math.isnan(ThresholdTable.from_dict(json.loads(json.dumps(nan_table.to_dict()))).val_precision)


def test_corrupted_table_files(tmp_path):
    table, _, _, _ = _table()
    good = table.to_dict()
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"head": "engagement", "thresh')
    with pytest.raises(ValueError, match="bad.json"):
        ThresholdTable.load(bad_json)
    cases = {
        "missing.json": ({k: v for k, v in good.items() if k != "thresholds"}, "thresholds"),
        "short.json": ({**good, "thresholds": good["thresholds"][:2]}, "thresholds"),
        "text.json": ({**good, "thresholds": ["abc"] * 4}, "thresholds"),
        "edges.json": ({**good, "edges": [0.3, 0.2, 0.1]}, "edges"),
        "policy.json": ({**good, "policy": "magic"}, "policy"),
        "counts.json": ({**good, "counts": [1.5, 2, 3, 4]}, "counts"),
        "list.json": ([1, 2, 3], "JSON object"),
    }
    for name, (data, field) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=field) as err:
            ThresholdTable.load(path)
        assert name in str(err.value)
