import numpy as np
import pandas as pd
import pytest

from tfrs_app.data.splits import random_split, split, time_split


def frame(times):
    return pd.DataFrame({"user_id": ["u"] * len(times), "item_id": [str(i) for i in range(len(times))],
                         "timestamp": np.array(times, dtype=np.int64)})


def test_time_split_is_ordered_and_never_straddles_a_timestamp():
    s = time_split(frame([1, 2, 3, 4, 5, 6, 7, 8, 8, 8]), val_fraction=0.1, test_fraction=0.2)
    assert s.train["timestamp"].max() < s.test["timestamp"].min()
    assert s.sizes() == {"train": 7, "val": 0, "test": 3}  # the cut at row 8 moves back to the first tied 8


def test_time_split_fractions():
    s = time_split(frame(list(range(100))), 0.1, 0.1)
    assert s.sizes() == {"train": 80, "val": 10, "test": 10}
    assert s.train["timestamp"].max() < s.val["timestamp"].min() <= s.val["timestamp"].max() < s.test["timestamp"].min()


def test_random_split_is_disjoint_complete_and_seeded():
    f = frame(list(range(1000)))
    a, b = random_split(f, 0.0, 0.2, seed=3), random_split(f, 0.0, 0.2, seed=3)
    assert a.sizes() == {"train": 800, "val": 0, "test": 200}
    assert set(a.train["item_id"]) | set(a.test["item_id"]) == set(f["item_id"])
    assert not set(a.train["item_id"]) & set(a.test["item_id"])
    pd.testing.assert_frame_equal(a.test, b.test)


def test_split_refuses_an_empty_test_set():
    with pytest.raises(ValueError, match="empty train or test"):
        split(frame([1, 1, 1]), "time", 0.0, 0.1)
