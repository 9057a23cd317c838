import numpy as np
import pandas as pd

from tfrs_app.features.examples import user_histories, with_history
from tfrs_app.features.space import FeatureSpace

EVENTS = pd.DataFrame({"user_id": ["a", "b", "a", "a", "b"], "item_id": ["1", "2", "3", "4", "5"],
                       "timestamp": [1, 2, 3, 4, 5], "item_title": ["x"] * 5, "item_genres": ["G"] * 5,
                       "user_segment": ["s", "t", "s", "s", "t"]})


def test_history_is_previous_items_most_recent_first():
    history = with_history(EVENTS, 2)
    assert history.tolist() == [["", ""], ["", ""], ["1", ""], ["3", "1"], ["2", ""]]


def test_history_leaves_out_events_sharing_the_timestamp():
    # user a rates 1 and 3 in the same second (a session stored under one timestamp), then 4
    events = pd.DataFrame({"user_id": ["a", "b", "a", "a", "a"], "item_id": ["1", "2", "3", "4", "5"],
                           "timestamp": [1, 1, 1, 2, 2]})
    history = with_history(events, 3)
    assert history.tolist() == [["", "", ""], ["", "", ""], ["", "", ""],  # 3 does not see 1: simultaneous
                                ["3", "1", ""], ["3", "1", ""]]  # 4 and 5 see what came before second 2 only


def test_user_histories_take_the_last_items():
    history = user_histories(EVENTS, np.array(["a", "b", "new"], dtype=object), 2)
    assert history.tolist() == [["4", "3"], ["5", "2"], ["", ""]]


def test_feature_space_fit_and_round_trip(tmp_path):
    catalog = pd.DataFrame({"item_id": ["1", "2", "9"], "item_title": ["The Big Day", "Big", "Small"],
                            "item_genres": ["Drama|Comedy", "Drama", ""]})
    space = FeatureSpace.fit(EVENTS, catalog, history_length=2, time_buckets=4)
    assert space.user_ids == ("a", "b") and space.item_counts == (1, 1, 1, 1, 1)
    assert space.genres == ("Comedy", "Drama")
    assert space.title_tokens[0] == "big"  # the most frequent token, lower-cased
    assert space.user_features == {"user_segment": ("s", "t")}
    np.testing.assert_allclose(space.item_probability(np.array(["1", "unseen"])), [0.2, 0.2])
    space.save(tmp_path / "f.json")
    assert FeatureSpace.load(tmp_path / "f.json") == space
