"""Order-aware history encoders (``retrieval.history_encoder``): padding, order, a planted-order
learning task, and the query tower's SavedModel reloaded by a process that imports only TensorFlow."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.retrieval.history import GRUHistoryEncoder, TransformerHistoryEncoder
from tfrs_app.retrieval.towers import MaskedMeanEmbedding, QueryTower
from tfrs_app.serving.export import query_specs

ENCODERS = {
    "mean": lambda: MaskedMeanEmbedding(21, 16),
    "gru": lambda: GRUHistoryEncoder(21, 16),
    "transformer": lambda: TransformerHistoryEncoder(21, 16, max_length=8),
}
ORDERED = ("gru", "transformer")


def encode(kind: str, *batches: list) -> list[np.ndarray]:
    """One seeded ``kind`` encoder applied to each batch of ids (most recent first, 0 pads)."""
    tf.keras.utils.set_random_seed(0)
    encoder = ENCODERS[kind]()
    return [encoder(tf.constant(b, tf.int64), training=False).numpy() for b in batches]


@pytest.mark.parametrize("kind", ORDERED)
def test_padding_does_not_change_the_vector_and_no_history_is_zeros(kind):
    rows = [[3, 7, 5], [4, 9, 0], [0, 0, 0], [6, 0, 2]]  # the last has a gap inside
    two, six, packed = encode(kind, [r + [0] * 2 for r in rows], [r + [0] * 6 for r in rows], [[6, 2]])
    np.testing.assert_allclose(two, six, atol=1e-6)
    np.testing.assert_allclose(two[3], packed[0], atol=1e-6)
    np.testing.assert_array_equal(two[2], np.zeros(16, np.float32))
    assert np.abs(two[:2]).min(axis=1).max() > 0 and np.abs(two[0] - two[1]).max() > 1e-4


def test_the_transformer_reads_the_newest_max_length_items():
    newest = list(range(1, 9))  # max_length 8
    full, longer, other = encode("transformer", [newest], [newest + [9, 10]], [newest[:7] + [9]])
    np.testing.assert_allclose(full, longer, atol=1e-6)
    assert np.abs(full - other).max() > 1e-3  # the 8th item is read


def test_transformer_dropout_applies_in_training_only():
    tf.keras.utils.set_random_seed(0)
    encoder = TransformerHistoryEncoder(21, 16, max_length=8, dropout=0.5)
    ids = tf.constant([[3, 7, 5, 0]], tf.int64)
    np.testing.assert_array_equal(encoder(ids, training=False), encoder(ids, training=False))
    assert np.abs(encoder(ids, training=True) - encoder(ids, training=False)).max() > 1e-3


@pytest.mark.parametrize("kind", ENCODERS)
def test_only_the_ordered_encoders_see_order(kind):
    forward, backward = encode(kind, [[1, 2, 3, 0]], [[3, 2, 1, 0]])
    gap = np.abs(forward - backward).max() / np.abs(forward).max()
    if kind in ORDERED:
        assert gap > 0.05
    else:
        assert gap < 1e-6


@pytest.mark.slow
def test_the_ordered_encoders_learn_the_most_recent_items_category():
    """Items 1..20 in 4 categories ((id - 1) % 4), histories of 3..6 items; the label is the
    category of the newest item only. A bag cannot tell which item is newest: the mean reaches
    about 0.5 (guessing the histories' majority category), the GRU and transformer 1.0 (2 epochs
    of 64-row batches over 4096 rows, seeds 0-2; slack below)."""

    def histories(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        ids = rng.integers(1, 21, size=(n, 8))
        ids[np.arange(8)[None, :] >= rng.integers(3, 7, size=n)[:, None]] = 0
        return ids, (ids[:, 0] - 1) % 4

    (x, y), (x_test, y_test) = histories(4096, 0), histories(1024, 1)
    accuracy = {}
    for kind, make in ENCODERS.items():
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([make(), tf.keras.layers.Dense(4)])
        model.compile(tf.keras.optimizers.Adam(0.01), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        accuracy[kind] = model.evaluate(x_test, y_test, verbose=0)[1]
    assert accuracy["mean"] <= 0.6 and min(accuracy["gru"], accuracy["transformer"]) >= 0.9, accuracy


USERS, ITEMS = ["u1", "u2"], [f"i{i}" for i in range(1, 10)]
RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    inputs = dict(np.load(sys.argv[1]))
    out = {}
    for i, path in enumerate(sys.argv[3:]):
        serve = tf.saved_model.load(path).signatures["serving_default"]
        for name in ("wide", "narrow"):
            request = {k[len(name) + 1:]: tf.constant(v) for k, v in inputs.items() if k.startswith(name + ":")}
            out[f"{i}:{name}"] = serve(**request)["query"].numpy()
    assert not any(m.split(".")[0] in ("tfrs_app", "tf_keras", "tensorflow_recommenders") for m in sys.modules)
    np.savez(sys.argv[2], **out)
""")


class _QueryServer(tf.Module):
    """The query tower behind the export's query input signature (``query_specs``)."""

    def __init__(self, tower: QueryTower):
        super().__init__()
        self.tower = tower
        self.serve = tf.function(lambda features: {"query": tower(features, training=False)},
                                 input_signature=[query_specs(tower.user_feature_names)])


@pytest.mark.slow
def test_ordered_query_towers_reload_from_a_saved_model_in_a_fresh_process(tmp_path):
    requests = {
        "wide": {"user_id": np.array([b"u1", b"u2", b"new"]), "timestamp": np.array([1_600_000_000] * 3),
                 "user_segment": np.array([b"a", b"b", b"a"]),
                 "history": np.array([[b"i3", b"i1", b"i7", b"i2", b"i9", b"i4"],  # longer than history_length
                                      [b"i5", b"", b"zz", b"", b"", b""],  # a gap and an unknown id
                                      [b""] * 6])},
        "narrow": {"user_id": np.array([b"u1"]), "timestamp": np.array([1_600_000_000]),
                   "user_segment": np.array([b"b"]), "history": np.array([[b"i8"]])},
    }
    expected, paths = [], []
    for kind, layer in zip(ORDERED, (GRUHistoryEncoder, TransformerHistoryEncoder)):
        tf.keras.utils.set_random_seed(0)
        tower = QueryTower(USERS, ITEMS, {"user_segment": ["a", "b"]}, 1.6e9, 1e7, [1.59e9, 1.6e9, 1.61e9],
                           embedding_dim=8, hidden_layers=(16,), output_dim=8, history_encoder=kind, history_length=4,
                           time_range=(1.5e9, 1.7e9), item_bias=True)
        assert isinstance(tower.history, layer)
        server = _QueryServer(tower)
        expected.append({name: server.serve(r)["query"].numpy() for name, r in requests.items()})
        paths.append(str(tmp_path / kind))
        tf.saved_model.save(server, paths[-1], signatures={"serving_default": server.serve.get_concrete_function()})
    np.savez(tmp_path / "in.npz", **{f"{name}:{k}": v for name, r in requests.items() for k, v in r.items()})
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), *paths],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    reloaded = np.load(tmp_path / "out.npz")
    for i, want in enumerate(expected):
        for name, vector in want.items():
            np.testing.assert_allclose(reloaded[f"{i}:{name}"], vector, atol=1e-5)


@pytest.mark.parametrize("use_history", [True, False])
def test_an_unknown_history_encoder_is_refused_by_name(use_history):
    with pytest.raises(ValueError, match=r"history_encoder: must be one of \['mean', 'gru', 'transformer'\], "
                                         r"got 'lstm'"):
        QueryTower(USERS, ITEMS, {}, 0.0, 1.0, [], use_history=use_history, history_encoder="lstm")
