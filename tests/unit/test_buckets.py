import numpy as np
import pytest

from tfrs_app.decision.buckets import assign_buckets, bucket_edges, placebo_buckets


def test_bucket_edges_worked_example():
    std = np.array([0.1] * 5 + [0.2] * 5 + [0.3] * 10)
    # quantile positions round(20/3) = 7 and round(40/3) = 13 of the sorted std: 0.2 and 0.3
    edges = bucket_edges(std, 3)
    assert edges.dtype == np.float64
    assert edges.tolist() == [0.2, 0.3]
    assert np.bincount(assign_buckets(std, edges)).tolist() == [5, 5, 10]


def test_bucket_edges_equal_counts_without_ties():
    std = np.arange(8) / 10  # 0.0 .. 0.7
    edges = bucket_edges(std, 4)
    assert edges.tolist() == [0.2, 0.4, 0.6]
    assert np.bincount(assign_buckets(std, edges)).tolist() == [2, 2, 2, 2]


def test_heavy_ties_drop_edges_and_never_straddle():
    std = np.array([0.0] * 6 + [1.0] * 4)
    edges = bucket_edges(std, 5)  # every quantile is 0.0 or 1.0; 0.0 would leave bucket 0 empty
    assert edges.tolist() == [1.0]
    assert assign_buckets(std, edges).tolist() == [0] * 6 + [1] * 4
    assert bucket_edges(np.full(7, 0.3), 4).size == 0  # constant std: a single bucket

    rng = np.random.default_rng(3)
    tied = rng.integers(0, 6, size=500) / 10.0  # six distinct values, many ties
    edges = bucket_edges(tied, 5)
    assert np.all(np.diff(edges) > 0) and edges.size <= 4
    buckets = assign_buckets(tied, edges)
    for value in np.unique(tied):
        assert np.unique(buckets[tied == value]).size == 1  # one value, one bucket
    assert np.all(np.bincount(buckets) > 0)  # no empty bucket


def test_assign_buckets_is_searchsorted_right():
    edges = np.array([0.2, 0.3])
    std = np.array([0.0, 0.19999, 0.2, 0.25, 0.3, 0.9])
    # a std equal to an edge goes to the bucket above it (tf.searchsorted(..., side="right") agrees)
    assert assign_buckets(std, edges).tolist() == [0, 0, 1, 1, 2, 2]
    assert assign_buckets(std, edges).dtype == np.int64
    assert assign_buckets(std, np.array([])).tolist() == [0] * 6


def test_one_bucket_has_no_edges():
    assert bucket_edges(np.array([0.1, 0.2, 0.3]), 1).size == 0


@pytest.mark.parametrize("std, num_buckets, field", [
    (np.array([]), 3, "std"),
    (np.array([0.1, np.nan]), 3, "std"),
    (np.array([0.1, np.inf]), 3, "std"),
    (np.array([0.1, 0.2]), 0, "num_buckets"),
])
def test_bucket_edges_rejects_bad_input(std, num_buckets, field):
    with pytest.raises(ValueError, match=field):
        bucket_edges(std, num_buckets)


def test_assign_buckets_rejects_unsorted_edges():
    with pytest.raises(ValueError, match="edges"):
        assign_buckets(np.array([0.1]), np.array([0.3, 0.2]))


def test_placebo_buckets_keep_sizes_and_shuffle():
    buckets = np.repeat(np.arange(4), [50, 30, 20, 100])
    placebo = placebo_buckets(buckets, seed=7)
    assert np.bincount(placebo).tolist() == [50, 30, 20, 100]
    assert not np.array_equal(placebo, buckets)
    assert np.array_equal(placebo, placebo_buckets(buckets, seed=7))
    assert not np.array_equal(placebo, placebo_buckets(buckets, seed=8))
