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


def test_leave_last_out_holds_out_each_users_last_two_events():
    f = pd.DataFrame({"user_id": ["a", "b", "a", "a", "c", "b", "a", "b", "c"],
                      "item_id": ["a1", "b1", "a2", "a3", "c1", "b2", "a4", "b3", "c2"],
                      "timestamp": np.arange(9, dtype=np.int64)})
    s = split(f, "leave_last_out", 0.1, 0.1)
    assert list(s.test["item_id"]) == ["b3", "a4"] or sorted(s.test["item_id"]) == ["a4", "b3"]
    assert sorted(s.val["item_id"]) == ["a3", "b2"]
    assert sorted(s.train["item_id"]) == ["a1", "a2", "b1", "c1", "c2"]  # c has 2 events: all train
    no_val = split(f, "leave_last_out", 0.0, 0.1)
    assert sorted(no_val.test["item_id"]) == ["a4", "b3", "c2"] and len(no_val.val) == 0


def test_random_split_carves_validation_out_of_the_training_share():
    s = random_split(frame(list(range(1000))), 0.1, 0.2, seed=0)
    assert s.sizes() == {"train": 700, "val": 100, "test": 200}
    assert s.test.equals(random_split(frame(list(range(1000))), 0.0, 0.2, seed=0).test)  # same 20% either way


def test_split_names_the_field_for_an_unknown_method():
    with pytest.raises(ValueError, match="data.split"):
        split(frame([1, 2, 3]), "by_user", 0.1, 0.1)


def test_leave_last_out_breaks_same_second_ties_at_random_under_the_seed():
    f = pd.DataFrame({"user_id": ["a"] * 6, "item_id": ["1", "2", "3", "4", "5", "6"],
                      "timestamp": np.array([1, 2, 9, 9, 9, 9], dtype=np.int64)})  # a session in second 9
    picks = {split(f, "leave_last_out", 0.1, 0.1, seed=s).test["item_id"].iloc[0] for s in range(12)}
    assert picks <= {"3", "4", "5", "6"} and len(picks) > 1  # not always the log's last row
    a, b = split(f, "leave_last_out", 0.1, 0.1, seed=4), split(f, "leave_last_out", 0.1, 0.1, seed=4)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert set(a.train["item_id"]) >= {"1", "2"}  # earlier seconds stay in train


def test_known_is_train_and_validation_in_time_order():
    s = random_split(frame(list(range(100))), 0.1, 0.2, seed=0)
    known = s.known()
    assert len(known) == 80 and known["timestamp"].is_monotonic_increasing
    assert set(known["item_id"]) == set(s.train["item_id"]) | set(s.val["item_id"])
