"""Ranker pieces on a tiny synthetic log: examples and masks, MCDropout, trunk-once sampling."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import RankerConfig
from tfrs_app.data.splits import time_split
from tfrs_app.data.synthetic import generate
from tfrs_app.features.space import FeatureSpace
from tfrs_app.ranking.examples import ranking_examples
from tfrs_app.ranking.layers import Head, MCDropout
from tfrs_app.ranking.model import build_ranker
from tfrs_app.ranking.train import build
from tfrs_app.ranking.uncertainty import mc_logits, naive_mc_logits, predict, summarize


@pytest.fixture(scope="module")
def tiny():
    data = generate(num_users=60, num_items=40, mean_interactions_per_user=8, seed=3)
    splits = time_split(data.interactions.events, 0.1, 0.1)
    space = FeatureSpace.fit(splits.train, data.interactions.items, history_length=5, time_buckets=4)
    return splits, data.interactions.items, space


@pytest.fixture(scope="module")
def tiny_ranker(tiny):
    splits, catalog, space = tiny
    examples = ranking_examples(splits.train, splits.train.iloc[:0], catalog, space, per_positive=2, seed=1)
    tf.keras.utils.set_random_seed(0)  # fixed initial weights: the assertions below must not depend on luck
    model = build_ranker(RankerConfig(embedding_dim=8, feature_dim=8, trunk_layers=(16,), head_layers=(8, 4),
                                      dropout=0.3), space)
    build(model, examples)
    return model, examples


def test_examples_mask_unknown_labels_and_skip_the_users_items(tiny):
    splits, catalog, space = tiny
    events = splits.train.copy()
    events.loc[events.index[0], "satisfaction"] = np.nan
    events["weight_satisfaction"] = 2.0
    ex = ranking_examples(events, events.iloc[:0], catalog, space, per_positive=3, seed=0)
    n = len(events)
    logged = ex.is_logged
    assert logged[:n].all() and not logged[n:].any()
    assert 2.5 * n <= (~logged).sum() <= 3 * n  # collisions with the user's own items are dropped
    assert (ex.labels["engagement"][n:] == 0).all() and (ex.labels["engagement"][:n] == 1).all()
    assert np.isnan(ex.labels["satisfaction"][n:]).all() and np.isnan(ex.labels["responsibility"][n:]).all()
    inputs = ex.inputs()
    assert inputs["weight_satisfaction"][0] == 0.0 and inputs["label_satisfaction"][0] == 0.0  # masked, not a 0 label
    assert (inputs["weight_satisfaction"][1:n] == 2.0).all() and (inputs["weight_satisfaction"][n:] == 0).all()
    assert (inputs["weight_engagement"] == 1.0).all()
    users_items = set(zip(events["user_id"], events["item_id"]))
    sampled = set(zip(ex.features["user_id"][n:], ex.features["item_id"][n:]))
    assert not sampled & users_items
    titles = dict(zip(catalog["item_id"], catalog["item_title"]))
    assert all(titles[i] == t for i, t in zip(ex.features["item_id"][n:], ex.features["item_title"][n:]))


def test_satisfaction_is_learned_only_where_the_user_engaged(tiny):
    splits, catalog, space = tiny
    events = splits.train.copy()
    events["engagement"] = 0.0  # impressions the user skipped: satisfaction given engagement is undefined
    ex = ranking_examples(events, events.iloc[:0], catalog, space, per_positive=0)
    assert np.isnan(ex.labels["satisfaction"]).all()
    assert (ex.inputs()["weight_satisfaction"] == 0).all()


def test_validation_histories_come_from_earlier_events(tiny):
    splits, catalog, space = tiny
    ex = ranking_examples(splits.val, splits.train, catalog, space, per_positive=0)
    row = 0
    user, ts = splits.val["user_id"].iloc[row], splits.val["timestamp"].iloc[row]
    before = pd.concat([splits.train, splits.val])
    before = before[(before["user_id"] == user) & (before["timestamp"] < ts)]
    expected = list(before["item_id"])[::-1][:5]
    assert [h for h in ex.features["history"][row] if h][: len(expected)] == expected[: len([h for h in ex.features["history"][row] if h])]


def test_mc_dropout_is_off_unless_noise_is_given():
    layer = MCDropout(0.5)
    x = tf.ones([2, 4])
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    noise = tf.constant([[0.1, 0.9, 0.6, 0.4], [0.5, 0.49, 0.0, 0.99]])
    np.testing.assert_array_equal(layer(x, noise=noise).numpy(), [[0, 2, 2, 0], [2, 0, 0, 2]])
    trained = layer(tf.ones([1000, 10]), training=True).numpy()
    assert set(np.unique(trained)) == {0.0, 2.0} and 0.4 < (trained == 0).mean() < 0.6
    with pytest.raises(ValueError, match="rate"):
        MCDropout(0.0)


def test_deterministic_path_repeats_exactly(tiny_ranker):
    model, examples = tiny_ranker
    features = {k: tf.constant(v) for k, v in examples.model_features().items()}
    first = model(features, training=False)
    second = model(features, training=False)
    for head in first:
        np.testing.assert_array_equal(first[head].numpy(), second[head].numpy())


def test_trunk_once_sampler_matches_t_full_passes(tiny_ranker):
    model, examples = tiny_ranker
    features = {k: tf.constant(v[:50]) for k, v in examples.model_features().items()}
    fast = mc_logits(model, features, num_samples=7, seed=5)
    slow = naive_mc_logits(model, features, num_samples=7, seed=5)
    other = mc_logits(model, features, num_samples=7, seed=6)
    for head in fast:
        assert fast[head].shape == (7, 50)
        np.testing.assert_allclose(fast[head].numpy(), slow[head].numpy(), rtol=1e-5, atol=1e-5)
        assert not np.allclose(fast[head].numpy(), other[head].numpy())  # the seed matters
        mean, std = summarize(fast[head])
        assert (std.numpy() > 0).mean() > 0.9  # the samples differ


def test_predict_batches_agree_and_t_below_two_is_refused(tiny_ranker):
    model, examples = tiny_ranker
    features = examples.model_features()
    whole = predict(model, features, num_samples=5, seed=1, batch_size=100000)
    deterministic = predict(model, features)
    assert set(deterministic["engagement"]) == {"score"}
    assert np.abs(whole["engagement"]["score"] - deterministic["engagement"]["score"]).mean() < 0.05
    with pytest.raises(ValueError, match="T >= 2"):
        predict(model, features, num_samples=1)


def test_head_splits_into_prefix_and_suffix():
    head = Head((6, 3), dropout=0.2)
    x = tf.random.normal([4, 5])
    np.testing.assert_allclose(head(x).numpy(), head.suffix(head.prefix(x)).numpy())
    assert head.noise_widths == (6, 3)


def test_mmoe_trunk_gates_per_head_and_samples_like_the_shared_one(tiny):
    splits, catalog, space = tiny
    examples = ranking_examples(splits.train, splits.train.iloc[:0], catalog, space, per_positive=1, seed=1)
    model = build_ranker(RankerConfig(embedding_dim=8, feature_dim=8, trunk="mmoe", num_experts=3,
                                      trunk_layers=(16,), head_layers=(8,)), space)
    build(model, examples)
    features = {k: tf.constant(v[:20]) for k, v in examples.model_features().items()}
    hidden = model.trunk_outputs(features)
    assert set(hidden) == {"engagement", "satisfaction", "responsibility"}
    assert not np.allclose(hidden["engagement"].numpy(), hidden["satisfaction"].numpy())  # own gates, own mixtures
    gates = model.trunk.gates["engagement"](tf.random.normal([4, 24]))
    np.testing.assert_allclose(gates.numpy().sum(axis=1), 1.0, rtol=1e-5)
    fast, slow = mc_logits(model, features, 4, seed=2), naive_mc_logits(model, features, 4, seed=2)
    for head in fast:
        np.testing.assert_allclose(fast[head].numpy(), slow[head].numpy(), rtol=1e-5, atol=1e-5)


def test_position_bias_is_trained_but_never_served(tiny):
    splits, catalog, space = tiny
    events = splits.train.copy()
    events["position"] = np.arange(len(events)) % 5
    examples = ranking_examples(events, events.iloc[:0], catalog, space, per_positive=1, seed=1, use_position=True)
    n = len(events)
    rows = np.flatnonzero(~examples.is_logged)
    # a sampled impression takes the slot of the event it was drawn beside: a sentinel would leak the label
    slots: dict = {}
    for u, t, p in zip(events["user_id"], events["timestamp"], events["position"]):
        slots.setdefault((u, t), set()).add(p)
    f = examples.features
    assert all(f["position"][r] in slots[(f["user_id"][r], f["timestamp"][r])] for r in rows)
    assert set(f["position"][n:]) == set(range(5))
    assert "position" not in examples.model_features()
    model = build_ranker(RankerConfig(embedding_dim=8, feature_dim=8, trunk_layers=(16,)), space, position_buckets=5)
    build(model, examples)
    inputs = {k: tf.constant(v[:64]) for k, v in examples.inputs().items()}
    trained_logits = model.training_logits(inputs, training=False)
    served = model(inputs, training=False)
    bias = model.position_logit(inputs["position"]).numpy()
    assert np.ptp(bias) > 0  # positions get different biases
    np.testing.assert_allclose(trained_logits["engagement"].numpy(), served["engagement"].numpy() + bias, rtol=1e-5)
    np.testing.assert_array_equal(trained_logits["satisfaction"].numpy(), served["satisfaction"].numpy())
    moved = dict(inputs, position=tf.zeros_like(inputs["position"]) + 3)
    served_moved = model(moved, training=False)
    for head in served:
        np.testing.assert_array_equal(served[head].numpy(), served_moved[head].numpy())  # dropped at serving
    without = build_ranker(RankerConfig(embedding_dim=8, feature_dim=8, use_position=False), space, position_buckets=5)
    assert without.position_bias is None
