"""GRU4Rec's losses on a hand-sized score matrix, against the formulas worked out with math."""
import math

import numpy as np
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.sequences.losses import (LOSSES, bpr, bpr_max, cross_entropy, final_activation, negative_softmax,
                                       session_loss, top1, top1_max)

# B = 2 rows, C = 4 columns: columns 0 and 1 are the targets of rows 0 and 1, columns 2 and 3
# are shared sampled negatives. Row 0's positive is 2.0 (its negatives 0.5, -1.0, 1.0); row 1's
# positive is 1.5 (its negatives 0.3, 0.8, -0.4).
SCORES = [[2.0, 0.5, -1.0, 1.0],
          [0.3, 1.5, 0.8, -0.4]]
MASK = [[False, True, True, True],
        [True, False, True, True]]
POSITIVE = [2.0, 1.5]
NEGATIVES = [[0.5, -1.0, 1.0], [0.3, 0.8, -0.4]]


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _losses(scores, mask, **kwargs):
    s, m = tf.constant(scores, tf.float32), tf.constant(mask)
    return {name: session_loss(name, s, m, **kwargs).numpy() for name in LOSSES}


def _expected(positive, negatives, bpreg=1.0):
    """The five losses of one row, straight from the paper formulas."""
    n = len(negatives)
    exp_all = [math.exp(positive)] + [math.exp(r) for r in negatives]
    softmax_neg = [math.exp(r) / sum(math.exp(q) for q in negatives) for r in negatives]
    return {
        "cross-entropy": -math.log(exp_all[0] / sum(exp_all)),
        "bpr": sum(-math.log(_sigmoid(positive - r)) for r in negatives) / n,
        "top1": sum(_sigmoid(r - positive) + _sigmoid(r * r) for r in negatives) / n,
        "bpr-max": (-math.log(sum(s * _sigmoid(positive - r) for s, r in zip(softmax_neg, negatives)) + 1e-24)
                    + bpreg * sum(s * r * r for s, r in zip(softmax_neg, negatives))),
        "top1-max": sum(s * (_sigmoid(r - positive) + _sigmoid(r * r)) for s, r in zip(softmax_neg, negatives)),
    }


def test_five_losses_match_hand_computation():
    got = _losses(SCORES, MASK)
    for name in LOSSES:
        want = [_expected(POSITIVE[i], NEGATIVES[i])[name] for i in range(2)]
        np.testing.assert_allclose(got[name], want, rtol=1e-5, err_msg=name)
    # a few written out in full, row 0:
    # BPR: mean of -log sigmoid(2 - 0.5), -log sigmoid(2 + 1), -log sigmoid(2 - 1)
    assert got["bpr"][0] == pytest.approx((math.log(1 + math.exp(-1.5)) + math.log(1 + math.exp(-3.0))
                                           + math.log(1 + math.exp(-1.0))) / 3, rel=1e-5)
    # XE: 2 - log(e^2 + e^0.5 + e^-1 + e^1)
    assert got["cross-entropy"][0] == pytest.approx(
        math.log(math.exp(2.0) + math.exp(0.5) + math.exp(-1.0) + math.exp(1.0)) - 2.0, rel=1e-5)


def test_bpreg_scales_only_the_regulariser():
    s, m = tf.constant(SCORES), tf.constant(MASK)
    got = bpr_max(s, m, bpreg=0.25).numpy()
    want = [_expected(POSITIVE[i], NEGATIVES[i], bpreg=0.25)["bpr-max"] for i in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(session_loss("bpr-max", s, m, bpreg=0.25).numpy(), want, rtol=1e-5)


def test_accidental_hit_is_not_a_negative():
    # row 1's target item also sits in sampled column 3: the caller clears mask[1, 3]
    mask = [[False, True, True, True], [True, False, True, False]]
    got = _losses(SCORES, mask)
    before = _losses(SCORES, MASK)
    for name in LOSSES:
        np.testing.assert_allclose(got[name][0], before[name][0], rtol=1e-6)  # row 0 unchanged
        np.testing.assert_allclose(got[name][1], _expected(1.5, [0.3, 0.8])[name], rtol=1e-5, err_msg=name)
        assert not np.isclose(got[name][1], before[name][1]), name
    # XE row 1 by hand without column 3: log(e^0.3 + e^1.5 + e^0.8) - 1.5
    assert got["cross-entropy"][1] == pytest.approx(
        math.log(math.exp(0.3) + math.exp(1.5) + math.exp(0.8)) - 1.5, rel=1e-5)


def test_row_without_negatives_is_zero_with_finite_gradients():
    scores = tf.Variable([[2.0, 0.5, -1.0, 1.0], [0.3, 1.5, 0.8, -0.4]])
    mask = tf.constant([[False, True, True, True], [False, False, False, False]])
    for name in LOSSES:
        with tf.GradientTape() as tape:
            rows = session_loss(name, scores, mask)
            total = tf.reduce_sum(rows)
        gradient = tape.gradient(total, scores).numpy()
        assert rows.numpy()[1] == 0.0, name
        np.testing.assert_allclose(rows.numpy()[0], _expected(2.0, [0.5, -1.0, 1.0])[name], rtol=1e-5)
        assert np.all(np.isfinite(gradient)), name
        np.testing.assert_array_equal(gradient[1], 0.0)  # nothing flows from an empty row
    np.testing.assert_array_equal(negative_softmax(scores, mask).numpy()[1], 0.0)


def test_gradients_finite_for_extreme_scores():
    # +-80 saturates every sigmoid and every float32 softmax; nothing may become NaN or inf
    scores = tf.Variable([[80.0, -80.0, 80.0, -80.0, 0.0],
                          [-80.0, -80.0, 80.0, 80.0, 0.0],
                          [0.0, 80.0, -80.0, 80.0, -80.0]])
    mask = tf.constant([[False, True, True, True, True],
                        [True, False, True, False, True],
                        [True, True, False, True, True]])
    for name in LOSSES:
        with tf.GradientTape() as tape:
            rows = session_loss(name, scores, mask, bpreg=0.5)
            total = tf.reduce_sum(rows)
        gradient = tape.gradient(total, scores).numpy()
        assert np.all(np.isfinite(rows.numpy())), name
        assert np.all(np.isfinite(gradient)), name
    # bpr-max when every negative outscores the positive by 160: -log(~0 + 1e-24) plus the regulariser
    row = bpr_max(tf.constant([[-80.0, 80.0]]), tf.constant([[False, True]]), bpreg=0.0).numpy()[0]
    assert row == pytest.approx(-math.log(1e-24), rel=1e-3)


def test_logq_is_subtracted_before_the_softmax():
    logq = tf.constant([0.5, -0.2, 1.0, 0.0])
    got = cross_entropy(tf.constant(SCORES), tf.constant(MASK), logq).numpy()
    # row 0: logits 2 - 0.5, 0.5 + 0.2, -1 - 1, 1 - 0; positive 1.5
    row0 = math.log(math.exp(1.5) + math.exp(0.7) + math.exp(-2.0) + math.exp(1.0)) - 1.5
    # row 1: logits 0.3 - 0.5, 1.5 + 0.2, 0.8 - 1, -0.4 - 0; positive 1.7
    row1 = math.log(math.exp(-0.2) + math.exp(1.7) + math.exp(-0.2) + math.exp(-0.4)) - 1.7
    np.testing.assert_allclose(got, [row0, row1], rtol=1e-5)
    np.testing.assert_allclose(session_loss("cross-entropy", tf.constant(SCORES), tf.constant(MASK), logq=logq),
                               got, rtol=1e-6)
    with pytest.raises(ValueError, match="cross-entropy"):
        session_loss("bpr-max", tf.constant(SCORES), tf.constant(MASK), logq=logq)


def test_direct_functions_agree_with_dispatch():
    s, m = tf.constant(SCORES), tf.constant(MASK)
    got = _losses(SCORES, MASK)
    np.testing.assert_allclose(bpr(s, m), got["bpr"], rtol=1e-6)
    np.testing.assert_allclose(top1(s, m), got["top1"], rtol=1e-6)
    np.testing.assert_allclose(top1_max(s, m), got["top1-max"], rtol=1e-6)
    np.testing.assert_allclose(cross_entropy(s, m), got["cross-entropy"], rtol=1e-6)


def test_unknown_loss_names_itself():
    with pytest.raises(ValueError, match="'hinge'"):
        session_loss("hinge", tf.constant(SCORES), tf.constant(MASK))


def test_final_activations():
    x = tf.constant([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(final_activation("linear")(x), [-1.0, 0.0, 2.0])
    np.testing.assert_allclose(final_activation("tanh")(x), [math.tanh(-1.0), 0.0, math.tanh(2.0)], rtol=1e-6)
    np.testing.assert_allclose(final_activation("relu")(x), [0.0, 0.0, 2.0])
    np.testing.assert_allclose(final_activation("elu-1")(x), [math.exp(-1.0) - 1.0, 0.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(final_activation("elu-0.5")(x), [0.5 * (math.exp(-1.0) - 1.0), 0.0, 2.0], rtol=1e-6)
    big = tf.Variable([100.0, -100.0])  # exp(100) overflows float32: the discarded branch must not poison the gradient
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(final_activation("elu-1")(big))
    np.testing.assert_allclose(tape.gradient(y, big).numpy(), [1.0, math.exp(-100.0)], atol=1e-30)
    for bad in ("softmax", "elu-", "elu-one"):
        with pytest.raises(ValueError, match=repr(bad)):
            final_activation(bad)
