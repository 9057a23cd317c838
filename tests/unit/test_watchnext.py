"""WatchNext values (graph/watchnext.py) and their term in the recommender's blend."""
from __future__ import annotations

import numpy as np
import pytest

from tfrs_app.config import ConfigError, load_config
from tfrs_app.graph.edges import ItemGraph
from tfrs_app.graph.watchnext import load_watchnext, save_watchnext, watchnext_values


def graph_of(item_ids, occurrences, follow_ons) -> ItemGraph:
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return ItemGraph(item_ids=np.asarray(item_ids, dtype=object), src=empty_i, dst=empty_i, weight=empty_f,
                     sim_a=empty_i, sim_b=empty_i, sim_weight=empty_f,
                     occurrences=np.asarray(occurrences, np.int64), follow_ons=np.asarray(follow_ons, np.float64))


def test_values_are_follow_ons_per_occurrence_shrunk_to_the_catalog_mean():
    values = watchnext_values(graph_of(["a", "b", "c"], [4, 1, 0], [8, 0, 0]), prior_events=5.0)
    # mean over the seen items: 8 follow-ons / 5 occurrences = 1.6; 5 pseudo-events at 1.6 = 8
    expected = np.array([(8 + 8) / (4 + 5), (0 + 8) / (1 + 5), (0 + 8) / (0 + 5)])
    assert list(values["item_id"]) == ["a", "b", "c"]
    assert list(values["occurrences"]) == [4, 1, 0]
    np.testing.assert_allclose(values["value"], expected, rtol=1e-6)
    # 99th percentile of [16/9, 4/3, 8/5], linear interpolation: 8/5 + 0.98 * (16/9 - 8/5)
    top = 1.6 + 0.98 * (16 / 9 - 1.6)
    np.testing.assert_allclose(values["normalised"], np.clip(expected / top, 0, 1), rtol=1e-6)
    assert values["normalised"].iloc[0] == 1.0  # above the 99th percentile: clipped
    assert values["normalised"].dtype == np.float32


def test_a_graph_without_follow_ons_gives_zeros():
    values = watchnext_values(graph_of(["a", "b"], [0, 0], [0, 0]))
    assert (values["normalised"] == 0).all() and (values["value"] == 0).all()


def test_load_aligns_with_the_requested_ids(tmp_path):
    values = watchnext_values(graph_of(["a", "b", "c"], [4, 1, 0], [8, 0, 0]))
    save_watchnext(values, tmp_path / "graph")
    by_id = dict(zip(values["item_id"], values["normalised"]))
    loaded = load_watchnext(tmp_path, ["c", "zz", "a", "b"])
    assert loaded.dtype == np.float32 and loaded.shape == (4,)
    np.testing.assert_array_equal(loaded, np.array([by_id["c"], 0.0, by_id["a"], by_id["b"]], np.float32))
    assert load_watchnext(tmp_path, np.array([1, 2])).tolist() == [0.0, 0.0]  # ids compared as strings


def test_load_without_values_names_the_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfrs-app train-graph"):
        load_watchnext(tmp_path, ["a"])


def test_negative_weight_is_a_config_error():
    with pytest.raises(ConfigError, match=r"recommender\.watchnext_weight"):
        load_config(None, ["recommender.watchnext_weight=-1"])
    assert load_config(None, ["recommender.watchnext_weight=0.5"]).recommender.watchnext_weight == 0.5
    assert load_config(None, []).recommender.watchnext_weight == 0.0


# --- the blend: a RecommenderServer on hand-built stand-ins for the towers, index and ranker ---

import tfrs_app  # noqa: E402,F401
import tensorflow as tf  # noqa: E402


class _Users:
    def lookup(self, ids):
        return tf.ones_like(ids, dtype=tf.int64)  # every user known: the personalized path


class _QueryTower:
    """One query vector for everyone."""
    user = _Users()

    def __call__(self, inputs, training=False):
        return tf.ones([tf.shape(inputs["user_id"])[0], 2], tf.float32)


class _Index:
    """Exact top-k over fixed item vectors."""

    def __init__(self, vectors):
        self.vectors = tf.constant(vectors, tf.float32)

    def __call__(self, query, k):
        scores, rows = tf.math.top_k(tf.matmul(query, self.vectors, transpose_b=True), k=k)
        return scores, rows


class _Head:
    noise_widths = (1,)

    def prefix(self, hidden):
        return hidden

    def suffix(self, z, noise):
        return tf.tile(z[..., 0], [tf.shape(noise[0])[0], 1])  # [T, B]: the same logit every sample


class _Ranker:
    """Every head gives every candidate the same logit: equal ranker outputs."""
    head_names = ("engagement", "satisfaction", "responsibility")
    heads = {name: _Head() for name in head_names}

    def __init__(self, logit=0.4):
        self.logit = logit

    def trunk_outputs(self, features, training=False):
        rows = tf.shape(features["item_id"])[0]
        return {name: tf.fill([rows, 1], self.logit) for name in self.head_names}


def _server(watchnext, weight, top_n=4, lam=1.0):
    from tfrs_app.decision.thresholds import ThresholdTable
    from tfrs_app.serving.recommender import Blend, Catalog, RecommenderServer

    # retrieval order i0, i1, i2, i3 (falling dot products with the all-ones query)
    vectors = np.array([[4.0, 0.0], [3.0, 0.1], [2.0, 0.2], [1.0, 0.3]], np.float32)
    ids = np.array([f"i{j}" for j in range(4)], dtype=object)
    catalog = Catalog(ids=ids, titles=ids, genres=np.array(["g"] * 4, dtype=object), embeddings=vectors,
                      counts=np.array([5, 3, 2, 1]), watchnext=watchnext)
    tables = {h: ThresholdTable(h, "global", 0.5, (), (0.0,), (1,), (1,)) for h in _Ranker.head_names}
    return RecommenderServer(_QueryTower(), _Index(vectors), _Ranker(), tables, catalog, (), (), history_length=3,
                             num_candidates=4, exclude_budget=0, top_n=top_n, mc_samples=2,
                             blend=Blend(mmr_lambda=lam, watchnext_weight=weight))


def _answer(server):
    from tfrs_app.serving.load import query_request

    # both rows on the personalized path ("x" is no item); the second has seen i0
    out = server.serve(query_request(["u1", "u2"], [1_600_000_000] * 2, [["x"], ["i0"]], {}))
    return {k: v.numpy() for k, v in out.items()}


WATCHNEXT = np.array([0.0, 0.2, 1.0, 0.5], np.float32)


def test_a_higher_watchnext_value_moves_an_item_up_at_equal_ranker_outputs():
    plain = _answer(_server(WATCHNEXT, 0.0))
    boosted = _answer(_server(WATCHNEXT, 1.0))
    # equal ranker outputs: without the term the list is the retrieval order (argmax takes the first tie)
    assert list(plain["path"]) == [b"personalized"] * 2
    assert [i.decode() for i in plain["item_ids"][0]] == ["i0", "i1", "i2", "i3"]
    assert [i.decode() for i in boosted["item_ids"][0]] == ["i2", "i3", "i1", "i0"]
    assert [i.decode() for i in boosted["item_ids"][1] if i] == ["i2", "i3", "i1"]  # i0 is seen
    p = 1 / (1 + np.exp(-0.4))  # P(engage) of every candidate
    np.testing.assert_allclose(boosted["score"][0], 0.5 * p + 0.5 * p + 1.0 * p * np.array([1.0, 0.5, 0.2, 0.0]),
                               rtol=1e-6)
    # a smaller weight moves i2 (and i3) up as well; the rest of the outputs do not depend on it
    half = _answer(_server(WATCHNEXT, 0.5))
    assert [i.decode() for i in half["item_ids"][0]] == ["i2", "i3", "i1", "i0"]
    np.testing.assert_array_equal(half["engagement_mean"][0], boosted["engagement_mean"][0])


def test_weight_zero_is_bit_identical_to_no_watchnext_values():
    without = _answer(_server(None, 0.0, top_n=3, lam=0.7))
    ignored = _answer(_server(WATCHNEXT, 0.0, top_n=3, lam=0.7))
    assert without.keys() == ignored.keys()
    for name in without:
        np.testing.assert_array_equal(without[name], ignored[name], err_msg=name)
    np.testing.assert_allclose(without["score"][0], 1 / (1 + np.exp(-0.4)), rtol=1e-6)


def test_blend_scores_leaves_the_term_out_at_weight_zero():
    from tfrs_app.serving.recommender import Blend, blend_scores

    heads = {h: {"mean": tf.constant([[0.3, 0.6]]), "std": tf.constant([[0.1, 0.2]])}
             for h in ("engagement", "satisfaction")}
    cold, popularity = tf.constant([[1.0]]), tf.constant([[0.5, 1.0]])
    blend = Blend(0.5, 0.5, 0.1, 0.7, 0.2)
    old = (0.5 * heads["engagement"]["mean"] + 0.5 * heads["satisfaction"]["mean"]
           - 0.1 * (heads["engagement"]["std"] + heads["satisfaction"]["std"])) + cold * 0.2 * popularity
    np.testing.assert_array_equal(blend_scores(blend, heads, cold, popularity).numpy(), old.numpy())
    np.testing.assert_array_equal(blend_scores(blend, heads, cold, popularity, tf.constant([[1.0, 1.0]])).numpy(),
                                  old.numpy())
    with_term = Blend(0.5, 0.5, 0.1, 0.7, 0.2, watchnext_weight=2.0)
    np.testing.assert_allclose(blend_scores(with_term, heads, cold, popularity, tf.constant([[1.0, 0.5]])).numpy(),
                               old.numpy() + 2.0 * np.array([[0.3, 0.6]]) * np.array([[1.0, 0.5]]), rtol=1e-6)
    with pytest.raises(ValueError, match="WatchNext"):
        blend_scores(with_term, heads, cold, popularity)


def test_server_refuses_misaligned_watchnext_values():
    with pytest.raises(ValueError, match="catalog.watchnext"):
        _server(np.zeros(3, np.float32), 1.0)
    with pytest.raises(ValueError, match="catalog.watchnext"):
        _server(np.array([0, np.nan, 0, 0], np.float32), 1.0)
    with pytest.raises(ValueError, match="watchnext_weight"):
        _server(WATCHNEXT, -1.0)
