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


def test_item_bias_is_one_extra_column_added_to_the_dot_product():
    import tfrs_app  # noqa: F401
    import tensorflow as tf

    from tfrs_app.config import RetrievalConfig
    from tfrs_app.features.examples import as_strings, candidate_features, query_features
    from tfrs_app.retrieval.model import build_model

    events = EVENTS.assign(timestamp=EVENTS["timestamp"] * 1000)
    space = FeatureSpace.fit(events, events.drop_duplicates("item_id"), history_length=2, time_buckets=2)
    model = build_model(RetrievalConfig(item_bias=True, output_dim=8, embedding_dim=8), space)
    queries = {k: tf.constant(v) for k, v in as_strings(query_features(events, with_history(events, 2))).items()}
    items = {k: tf.constant(v) for k, v in as_strings(candidate_features(events.assign(item_id=["1", "2", "3", "4", "new"]))).items()}
    q, c = model.query_tower(queries).numpy(), model.candidate_tower(items).numpy()
    assert q.shape == (5, 9) and c.shape == (5, 9)
    np.testing.assert_allclose(q[:, -1], 1.0)  # the query's constant column
    np.testing.assert_allclose(np.linalg.norm(c[:, :-1], axis=1), 1.0, atol=1e-5)  # still L2-normalised
    bias = model.candidate_tower.item.bias
    bias.embeddings.assign(np.arange(6, dtype=np.float32)[:, None] / 10)  # row 0: OOV
    c = model.candidate_tower(items).numpy()
    np.testing.assert_allclose(c[:, -1], [0.1 * (1 + space.item_ids.index(i)) for i in "1234"] + [0.0], atol=1e-6)
    np.testing.assert_allclose(q @ c.T, q[:, :-1] @ c[:, :-1].T + c[:, -1], atol=1e-5)


def test_recency_weights_halve_per_half_life_and_average_one():
    from tfrs_app.retrieval.train import recency_weights

    day = 86400
    w = recency_weights(np.array([10 * day, 8 * day, 6 * day, 10 * day]), half_life_days=2.0)
    np.testing.assert_allclose(w / w[0], [1.0, 0.5, 0.25, 1.0], rtol=1e-6)
    assert abs(w.mean() - 1.0) < 1e-6 and w.dtype == np.float32
