"""Adagrad with momentum (GRU4Rec's optimiser): dense and row-wise sparse updates vs numpy."""
import numpy as np
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.sequences.optimizers import AdagradMomentum

LR, MOMENTUM, EPS = 0.1, 0.9, 1e-6


def _reference(param, gradients, lr, momentum, eps):
    """acc += g^2; v = momentum v - lr g / sqrt(acc + eps); param += v, one gradient at a time."""
    param = np.array(param, np.float64)
    acc = np.zeros_like(param)
    velocity = np.zeros_like(param)
    for g in gradients:
        g = np.asarray(g, np.float64)
        acc = acc + g ** 2
        velocity = momentum * velocity - lr * g / np.sqrt(acc + eps)
        param = param + velocity
    return param, acc, velocity


def test_two_dense_steps_match_numpy():
    variable = tf.Variable([1.0, -2.0, 0.5])
    optimizer = AdagradMomentum(LR, MOMENTUM, EPS)
    optimizer.build([variable])
    gradients = [[0.5, -1.0, 0.0], [0.1, 0.3, -2.0]]
    for g in gradients:
        optimizer.apply([(tf.constant(g), variable)])
    param, acc, velocity = _reference([1.0, -2.0, 0.5], gradients, LR, MOMENTUM, EPS)
    np.testing.assert_allclose(variable.numpy(), param, rtol=1e-6)
    # first coordinate by hand: v1 = -0.1 * 0.5 / sqrt(0.25 + eps); v2 = 0.9 v1 - 0.1 * 0.1 / sqrt(0.26 + eps)
    v1 = -0.1 * 0.5 / np.sqrt(0.25 + EPS)
    v2 = 0.9 * v1 - 0.1 * 0.1 / np.sqrt(0.26 + EPS)
    assert variable.numpy()[0] == pytest.approx(1.0 + v1 + v2, rel=1e-6)
    np.testing.assert_allclose(optimizer._accumulators[variable.ref()].numpy(), acc, rtol=1e-6)
    np.testing.assert_allclose(optimizer._velocities[variable.ref()].numpy(), velocity, rtol=1e-5)


def test_momentum_zero_is_plain_adagrad():
    variable = tf.Variable([1.0, -2.0])
    optimizer = AdagradMomentum(0.5, epsilon=EPS)
    optimizer.build([variable])
    optimizer.apply([(tf.constant([2.0, -1.0]), variable)])
    optimizer.apply([(tf.constant([1.0, 1.0]), variable)])
    # param -= lr g / sqrt(acc + eps): acc = [4, 1] then [5, 2]
    want = [1.0 - 0.5 * 2.0 / np.sqrt(4.0 + EPS) - 0.5 * 1.0 / np.sqrt(5.0 + EPS),
            -2.0 + 0.5 * 1.0 / np.sqrt(1.0 + EPS) - 0.5 * 1.0 / np.sqrt(2.0 + EPS)]
    np.testing.assert_allclose(variable.numpy(), want, rtol=1e-6)
    assert not optimizer._velocities  # no velocity slot without momentum


def test_sparse_gradient_updates_only_touched_rows_and_sums_duplicates():
    table = tf.Variable(np.arange(10, dtype=np.float32).reshape(5, 2))
    optimizer = AdagradMomentum(LR, MOMENTUM, EPS)
    optimizer.build([table])
    gradient = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), tf.constant([1, 1, 3]),
                                tf.constant([5, 2]))
    optimizer.apply([(gradient, table)])
    # row 1 gets [1 + 3, 2 + 4] = [4, 6] in one update, row 3 [5, 6]; rows 0, 2, 4 are untouched
    summed = np.zeros((5, 2))
    summed[1], summed[3] = [4.0, 6.0], [5.0, 6.0]
    velocity = -LR * summed / np.sqrt(summed ** 2 + EPS)
    np.testing.assert_allclose(table.numpy(), np.arange(10).reshape(5, 2) + velocity, rtol=1e-6)
    np.testing.assert_allclose(optimizer._accumulators[table.ref()].numpy(), summed ** 2, rtol=1e-6)
    # each touched entry moved by almost exactly -lr (g / |g|), not by two separate steps
    np.testing.assert_allclose(table.numpy()[1], [2.0 - LR, 3.0 - LR], rtol=1e-5)

    # a second step touching rows 1 and 4: row 3 keeps its velocity and value, row 1 builds on both
    before = table.numpy()
    optimizer.apply([(tf.IndexedSlices(tf.constant([[1.0, 0.0], [-2.0, 2.0]]), tf.constant([4, 1]),
                                       tf.constant([5, 2])), table)])
    acc1 = summed[1] ** 2 + np.array([-2.0, 2.0]) ** 2
    v1 = MOMENTUM * velocity[1] - LR * np.array([-2.0, 2.0]) / np.sqrt(acc1 + EPS)
    v4 = -LR * np.array([1.0, 0.0]) / np.sqrt(np.array([1.0, 0.0]) + EPS)
    np.testing.assert_allclose(table.numpy()[1], before[1] + v1, rtol=1e-6)
    np.testing.assert_allclose(table.numpy()[4], before[4] + v4, rtol=1e-6)
    np.testing.assert_array_equal(table.numpy()[[0, 2, 3]], before[[0, 2, 3]])
    np.testing.assert_allclose(optimizer._velocities[table.ref()].numpy()[3], velocity[3], rtol=1e-6)


def test_inside_tf_function_matches_eager():
    def make():
        return tf.Variable([[0.5, -0.5], [1.0, 2.0], [0.0, 1.0]]), tf.Variable([1.0, -1.0])

    def loss(table, dense):
        rows = tf.gather(table, [2, 0, 2])  # gradient: IndexedSlices with a duplicate row
        return tf.reduce_sum(tf.square(rows @ dense[:, None] - 1.0))

    def step(optimizer, table, dense):
        with tf.GradientTape() as tape:
            value = loss(table, dense)
        gradients = tape.gradient(value, [table, dense])
        optimizer.apply(zip(gradients, [table, dense]))
        return gradients

    eager_vars, graph_vars = make(), make()
    eager, graph = AdagradMomentum(LR, MOMENTUM), AdagradMomentum(LR, MOMENTUM)
    eager.build(eager_vars)
    graph.build(graph_vars)
    assert isinstance(step(eager, *eager_vars)[0], tf.IndexedSlices)
    graph_step = tf.function(lambda: step(graph, *graph_vars))
    graph_step()
    for _ in range(2):
        step(eager, *eager_vars)
        graph_step()
    for e, g in zip(eager_vars, graph_vars):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(graph_vars[0].numpy()[1], [1.0, 2.0])  # row 1 never gathered, never moved


def test_bad_arguments_and_unbuilt_variables():
    for kwargs, name in (({"learning_rate": 0.0}, "learning_rate"), ({"learning_rate": 0.1, "momentum": -0.1},
                                                                     "momentum"),
                         ({"learning_rate": 0.1, "epsilon": 0.0}, "epsilon")):
        with pytest.raises(ValueError, match=name):
            AdagradMomentum(**kwargs)
    optimizer = AdagradMomentum(LR)
    variable = tf.Variable([1.0])
    with pytest.raises(ValueError, match="build"):
        optimizer.apply([(tf.constant([1.0]), variable)])
    optimizer.build([variable])
    optimizer.apply([(None, variable)])  # no gradient: skipped
    assert variable.numpy()[0] == 1.0
