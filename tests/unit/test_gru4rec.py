"""GRU4Rec: the model's shapes and invariances, training on planted order, save -> load -> same scores."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import ConfigError, load_config
from tfrs_app.sequences.model import GRU4Rec, pad_sequences
from tfrs_app.sequences.train import Sequences, Vocabulary, fit, gru_scorer, load_trained_sessions, run
from tfrs_app.sequences.evaluate import evaluate_next_item, next_item_cases


def test_encode_ignores_padding_and_reads_order():
    model = GRU4Rec(10, hidden_sizes=(8,), seed=1)
    short = model.encode(tf.constant([[3, 5]]), tf.constant([2])).numpy()
    padded = model.encode(tf.constant([[3, 5, 0, 0, 7]]), tf.constant([2])).numpy()
    np.testing.assert_allclose(short, padded, atol=1e-6)
    reversed_ = model.encode(tf.constant([[5, 3]]), tf.constant([2])).numpy()
    assert np.abs(short - reversed_).max() > 1e-3  # a sequence model: order matters
    empty = model.encode(tf.constant([[0]]), tf.constant([0])).numpy()
    np.testing.assert_array_equal(empty, np.zeros((1, 8)))
    assert model.score_all(tf.constant(short)).shape == (1, 10)  # rows 1..10, not the unknown row


def test_input_variants_and_tied_table():
    one_hot = GRU4Rec(10, hidden_sizes=(8,), constrained_embedding=False)
    assert one_hot.input_kernels[0].shape == (11, 24)  # one-hot x W_x0: an item table of 3H columns
    embedded = GRU4Rec(10, hidden_sizes=(8,), embedding_dim=4, constrained_embedding=False)
    assert embedded.input_items.shape == (11, 4) and embedded.input_kernels[0].shape == (4, 24)
    tied = GRU4Rec(10, hidden_sizes=(8, 6))
    assert tied.input_items is None and tied.input_kernels[0].shape == (6, 24)  # the last hidden size
    before = tied.encode(tf.constant([[2]]), tf.constant([1])).numpy()
    tied.output_items.assign_add(tf.one_hot([2], 11)[:, :, None][0] * tf.ones([1, 6]))  # move item 2's output row
    after = tied.encode(tf.constant([[2]]), tf.constant([1])).numpy()
    assert np.abs(before - after).max() > 1e-4  # the input reads the output table
    with pytest.raises(ValueError, match="embedding_dim"):
        GRU4Rec(10, embedding_dim=4, constrained_embedding=True)


def test_pad_sequences_keeps_the_last_items():
    padded, lengths = pad_sequences([np.array([1, 2, 3]), np.array([], np.int64), np.array([4])], max_length=2)
    np.testing.assert_array_equal(padded, [[2, 3], [0, 0], [4, 0]])
    np.testing.assert_array_equal(lengths, [2, 0, 1])


def _cycle_sequences(num_items: int, sessions: int, length: int, seed: int) -> Sequences:
    """Item i is always followed by i + 1 (mod num_items, rows 1..num_items), popularity flat."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, num_items, sessions)
    items = ((starts[:, None] + np.arange(length)[None, :]) % num_items + 1).reshape(-1)
    return Sequences(np.arange(0, sessions * length + 1, length, dtype=np.int64), items.astype(np.int64),
                     np.zeros(sessions, dtype=object))


def test_learns_a_planted_successor():
    s = load_config(None, ["sessions.hidden_sizes=[32]", "sessions.num_sampled_negatives=16", "sessions.epochs=4",
                           "sessions.learning_rate=0.1"]).sessions
    train, test = _cycle_sequences(30, 300, 6, 0), _cycle_sequences(30, 50, 6, 1)
    model = GRU4Rec(30, (32,), final_activation_name=s.activation, seed=0)
    result = fit(model, train, s, seed=0)
    assert len(result["epochs"]) == 4 and result["events_per_second"] > 0
    identity = np.arange(1, 31)  # catalog row r -> model row r + 1
    scorer = gru_scorer(model, identity, np.ones(30))
    prefixes, targets = next_item_cases(test.offsets, test.items - 1)
    metrics = evaluate_next_item(scorer, prefixes, targets, k=1)
    assert metrics["recall@1"] >= 0.8  # popularity (flat) would get about 1/25
    first = result["epochs"][0]["loss"]
    assert result["epochs"][-1]["loss"] < first


def test_vocabulary_maps_only_trained_items():
    train = Sequences(np.array([0, 3]), np.array([2, 0, 2]), np.array(["u"], dtype=object))
    vocabulary = Vocabulary.from_training(train, pd.Index(["a", "b", "c", "d"]))
    assert list(vocabulary.item_ids) == ["a", "c"] and list(vocabulary.counts) == [1, 2]
    np.testing.assert_array_equal(vocabulary.model_rows(pd.Index(["a", "b", "c", "d"])), [1, -1, 2, -1])
    mapped = train.mapped(vocabulary.model_rows(pd.Index(["a", "b", "c", "d"])))
    np.testing.assert_array_equal(mapped.items, [2, 1, 2])


def test_unknown_prefix_gets_the_popularity_list():
    model = GRU4Rec(3, hidden_sizes=(4,))
    scorer = gru_scorer(model, np.array([1, 2, -1, 3]), np.array([5.0, 1.0, 9.0]))
    scores = scorer([np.array([2])])  # catalog row 2 has no model row: nothing known
    assert np.isneginf(scores[0, 2])
    assert list(np.argsort(-scores[0])[:3]) == [3, 0, 1]  # counts 9, 5, 1


SMALL = ["data.source=synthetic_sequential", "data.split=session", "data.sequential.num_users=300",
         "data.sequential.num_items=120", "data.sequential.num_clusters=6", "sessions.hidden_sizes=[16]",
         "sessions.num_sampled_negatives=32", "sessions.epochs=2"]


def test_run_saves_and_reloads_with_the_same_scores(tmp_path):
    cfg = load_config(None, SMALL + [f"run_dir={tmp_path}"])
    report = run(cfg)
    assert set(report["test"]) == {"gru4rec", "popularity", "session_knn"}
    assert report["test"]["gru4rec"]["num_cases"] > 100
    assert (tmp_path / "sessions" / "report.json").exists() and not (tmp_path / "sessions.tmp").exists()
    trained = load_trained_sessions(tmp_path)
    again = load_trained_sessions(tmp_path)
    batch = tf.constant([[1, 2, 3], [4, 0, 0]], tf.int64)
    lengths = tf.constant([3, 1])
    np.testing.assert_allclose(trained.model.score_all(trained.model.encode(batch, lengths)).numpy(),
                               again.model.score_all(again.model.encode(batch, lengths)).numpy(), atol=1e-6)
    assert len(trained.vocabulary) == trained.model.num_items


def test_no_sequence_to_learn_from_is_a_clear_error(tmp_path):
    # the demo generator's log has no session_id and spreads a user's events over a year: with a
    # gap of 0.06 s every session is a single event
    cfg = load_config(None, [f"run_dir={tmp_path}", "data.synthetic.num_users=100", "data.synthetic.num_items=150",
                             "data.session_gap_minutes=0.001", "data.split=leave_last_out"])
    with pytest.raises(ValueError, match="session_gap_minutes"):
        run(cfg)


def test_a_split_that_cuts_sessions_is_refused(tmp_path):
    cfg = load_config(None, SMALL + [f"run_dir={tmp_path}", "data.split=time"])
    with pytest.raises(ValueError, match="data.split"):
        run(cfg)


def test_load_without_a_trained_model_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-sessions"):
        load_trained_sessions(tmp_path)


@pytest.mark.parametrize("override, field", [("sessions.loss=hinge", "sessions.loss"),
                                             ("sessions.sequence=day", "sessions.sequence"),
                                             ("sessions.embedding_dim=8", "sessions.embedding_dim"),
                                             ("sessions.dropout_hidden=1.0", "sessions.dropout_hidden"),
                                             ("sessions.final_activation=softmax", "sessions.final_activation")])
def test_bad_config_names_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config(None, [override])
