"""Serving inputs: request times past the training data, timestamp units, ranks and batch sizes.

Three small untrained servers (retrieval, ranker, recommender) on a 60-user synthetic log:
what is checked is how inputs are read and refused, which needs no training.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import HEADS, RankerConfig
from tfrs_app.data.splits import time_split
from tfrs_app.data.synthetic import generate
from tfrs_app.decision.thresholds import ThresholdTable
from tfrs_app.features.space import FeatureSpace
from tfrs_app.ranking.examples import ranking_examples
from tfrs_app.ranking.model import build_ranker
from tfrs_app.ranking.train import build
from tfrs_app.retrieval.index import build_brute_force
from tfrs_app.retrieval.towers import QueryTower
from tfrs_app.serving.export import RetrievalServer
from tfrs_app.serving.load import query_request
from tfrs_app.serving.ranker import RankerServer
from tfrs_app.serving.recommender import Catalog, Recommender, RecommenderServer

FIVE_YEARS = 5 * 365 * 86400
MS = int(1.7e12)  # a millisecond timestamp (2023) sent as seconds


@pytest.fixture(scope="module")
def servers():
    """(space, ranker examples, {"retrieval", "ranker", "recommender": server})."""
    data = generate(num_users=60, num_items=40, mean_interactions_per_user=8, seed=3)
    splits = time_split(data.interactions.events, 0.1, 0.1)
    catalog = data.interactions.items
    space = FeatureSpace.fit(splits.train, catalog, history_length=5, time_buckets=4)
    tf.keras.utils.set_random_seed(0)
    examples = ranking_examples(splits.train, splits.train.iloc[:0], catalog, space, per_positive=1, seed=1)
    ranker = build_ranker(RankerConfig(embedding_dim=8, feature_dim=8, trunk_layers=(16,), head_layers=(8,)), space)
    build(ranker, examples)
    tower = QueryTower(space.user_ids, space.item_ids, space.user_features, space.time_mean, space.time_std,
                       space.time_boundaries, embedding_dim=8, hidden_layers=(), output_dim=8,
                       time_range=space.time_range)
    ids = catalog["item_id"].to_numpy().astype(str)
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    user_features = tower.user_feature_names
    tables = {h: ThresholdTable(h, "global", 0.5, (0.05,), (0.0, 0.0), (1, 1), (1, 1)) for h in HEADS}
    built = {
        "retrieval": RetrievalServer(tower, build_brute_force(vectors, ids, 5), user_features, 5),
        "ranker": RankerServer(ranker, tables, ranker.query_encoder.user_feature_names, num_samples=4),
        "recommender": RecommenderServer(
            tower, build_brute_force(vectors, np.arange(len(ids), dtype=np.int64), 15), ranker, tables,
            Catalog(ids, catalog["item_title"].to_numpy(), catalog["item_genres"].to_numpy(), vectors,
                    np.ones(len(ids))),
            user_features, ranker.query_encoder.user_feature_names, history_length=5, num_candidates=10,
            exclude_budget=5, top_n=3, mc_samples=4),
    }
    return space, examples, built


def request(server, batch: int = 2, **changes) -> dict:
    """A valid request of ``batch`` rows for ``server``'s inputs, with ``changes`` replacing inputs."""
    values = {"timestamp": tf.constant([1_600_000_000] * batch, tf.int64),
              "history": tf.constant([["i1", ""]] * batch)}
    inputs = {name: values.get(name, tf.constant([f"{name}-x"] * batch)) for name in server.input_specs}
    inputs.update(changes)
    return inputs


def signatures(servers) -> list:
    """(label, server, concrete function) for every signature of the three servers."""
    return [(f"{name}/{key}", server, fn) for name, server in servers[2].items()
            for key, fn in server.signatures().items()]


def test_a_ranker_request_after_the_training_data_reads_as_its_last_moment(servers):
    space, examples, built = servers
    first, last = (int(t) for t in space.time_range)
    features = {k: tf.constant(v[:8]) for k, v in examples.model_features().items()}
    ranker, sign = built["ranker"].model, built["ranker"].signatures()

    def at(stamp):
        timed = dict(features, timestamp=tf.constant([stamp] * 8, tf.int64))
        return ({h: v.numpy() for h, v in ranker(timed, training=False).items()},
                {h: sign["serving_default"](**timed)[h].numpy() for h in HEADS},
                {h: sign["predict_with_uncertainty"](**timed)[f"{h}_mean"].numpy() for h in HEADS})

    for later, latest in zip(at(last + FIVE_YEARS), at(last)):
        for head in HEADS:
            np.testing.assert_allclose(later[head], latest[head], rtol=1e-6, atol=1e-7)
    # time matters inside the training range, so the equality above is the clipping at work
    assert not np.allclose(at(first)[0]["engagement"], at(last)[0]["engagement"])


def test_the_default_request_time_answers_as_the_last_training_time(servers):
    """`tfrs-app recommend` without --timestamp asks at time.time(): past the data, so clipped."""
    space, _, built = servers
    rec = Recommender.from_server(built["recommender"])
    user = space.user_ids[0]
    features = {name: "segment1" for name in rec.user_features}
    now = rec.recommend(user, ["i1", "i2"], None, features)
    latest = rec.recommend(user, ["i1", "i2"], int(space.time_range[1]), features)
    assert [i.item_id for i in now.items] == [i.item_id for i in latest.items] and now.dropped == latest.dropped
    np.testing.assert_allclose([i.score for i in now.items], [i.score for i in latest.items], rtol=1e-6)


@pytest.mark.parametrize("stamp, hint", [(MS, " (milliseconds?)"), (1.7e12, " (milliseconds?)"), (-1, "")])
def test_timestamps_outside_unix_seconds_are_refused_in_python(servers, stamp, hint):
    message = f"timestamp: expected Unix seconds in [0, 10413792000), got {stamp!r}{hint}"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        query_request(["u1"], [stamp], [[]])
    rec = Recommender.from_server(servers[2]["recommender"])
    with pytest.raises(ValueError, match="timestamp"):
        rec.recommend("u1", [], MS)


def test_every_signature_refuses_millisecond_and_negative_timestamps(servers):
    for _, server, fn in signatures(servers):
        fn(**request(server))  # a valid request passes
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"timestamp: expected Unix seconds in \[0, 10413792000\), "
                                 r"got \[1700000000000\] \(milliseconds\?\)"):
            fn(**request(server, timestamp=tf.constant([1_600_000_000, MS], tf.int64)))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"got \[-5\]\]"):
            fn(**request(server, timestamp=tf.constant([-5, 1_600_000_000], tf.int64)))


def test_a_wrong_rank_names_the_input(servers):
    """TF does not enforce the signature's TensorSpec ranks at call time: without the checks
    these reach the towers and fail with ``ConcatOp : Ranks of all input tensors should match``."""
    for label, server, fn in signatures(servers):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"history: expected \[B, L\] string, got rank 1"):
            fn(**request(server, history=tf.constant(["i1", "i2"])))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"user_id: expected \[B\] string, got rank 2"):
            fn(**request(server, user_id=tf.constant([["u1"], ["u2"]])))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"timestamp: expected \[B\] int64, got rank 0"):
            fn(**request(server, timestamp=tf.constant(1_600_000_000, tf.int64)))
        if label.startswith("ranker"):
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"item_id: expected \[B\] string, got rank 2"):
                fn(**request(server, item_id=tf.constant([["i1"], ["i2"]])))


def test_batch_sizes_that_disagree_name_the_inputs(servers):
    for label, server, fn in signatures(servers):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"batch sizes differ: user_id 3, timestamp 2, history 2.* one row per user_id"):
            fn(**request(server, user_id=tf.constant(["u1", "u2", "u3"])))
        if label.startswith("ranker"):
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"item_id 1"):
                fn(**request(server, item_id=tf.constant(["i1"])))


def test_checks_hold_in_the_saved_model_and_through_a_session_feed(servers, tmp_path):
    """The loaded signature, and a TF1 session fed the way TF Serving feeds one (the C++ run, no
    Python-side shape check), both answer with the named message."""
    server = servers[2]["retrieval"]
    tf.saved_model.save(server, str(tmp_path), signatures=server.signatures())
    bad = request(server, history=tf.constant(["i1", "i2"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"history: expected \[B, L\] string, got rank 1"):
        tf.saved_model.load(str(tmp_path)).signatures["serving_default"](**bad)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(tmp_path))
        signature = meta_graph.signature_def["serving_default"]
        fetches = [graph.get_tensor_by_name(t.name) for t in signature.outputs.values()]
        feed = {graph.get_tensor_by_name(signature.inputs[k].name).ref(): v.numpy() for k, v in bad.items()}
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"history: expected \[B, L\] string, got rank 1"):
            session._do_run(None, [], fetches, feed, None, None)  # Session.run would refuse the shape in Python
