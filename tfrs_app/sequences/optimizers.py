"""GRU4Rec's optimiser: Adagrad with (classical) momentum, with row-wise sparse updates.

The reference code (hidasib/GRU4Rec ``gru4rec.py``: ``adagrad`` then the momentum block of
``RMSprop``; hidasib/GRU4Rec_PyTorch_Official ``IndexedAdagradM``) updates each parameter as

    acc += g ** 2;  step = g / sqrt(acc + eps);  v = momentum * v - lr * step;  param += v

and, with momentum 0, ``param -= lr * step`` (no velocity kept). Two details differ from
``tf.keras.optimizers.Adagrad``: eps sits inside the square root and the accumulator starts at
0 (Keras: ``sqrt(acc) + eps`` from an initial 0.1). The reference docstring calls the momentum
"Nesterov", but the update it implements is the classical one above.

Embedding tables get sparse gradients (tf.IndexedSlices): only the touched rows' accumulator
and velocity change, so an item that is not in the mini-batch keeps its velocity too. Duplicate
indices are summed first, as the PyTorch port's ``grad.coalesce()`` does ("the update is
non-linear so indices must be unique"); the Theano version updated each occurrence separately,
with the last write winning in the accumulator.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

Gradient = Union[tf.Tensor, tf.IndexedSlices]


class AdagradMomentum:
    """``build(variables)`` once, outside any ``tf.function``, to create the slots (an accumulator
    per variable and, with momentum > 0, a velocity); then ``apply(grads_and_vars)``, eagerly or
    inside a ``tf.function``, for each step. Dense gradients update the whole variable; an
    IndexedSlices gradient (indices [K], values [K, ...]) updates only its unique rows.
    None gradients are skipped, as in the PyTorch port.
    """

    def __init__(self, learning_rate: float, momentum: float = 0.0, epsilon: float = 1e-6):
        if learning_rate <= 0.0:
            raise ValueError(f"AdagradMomentum: learning_rate must be > 0, got {learning_rate}")
        if momentum < 0.0:
            raise ValueError(f"AdagradMomentum: momentum must be >= 0, got {momentum}")
        if epsilon <= 0.0:
            raise ValueError(f"AdagradMomentum: epsilon must be > 0, got {epsilon}")
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self._accumulators: dict = {}
        self._velocities: dict = {}

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Creates the zero slots of every variable in ``variables`` not built yet."""
        for variable in variables:
            key = variable.ref()
            if key in self._accumulators:
                continue
            name = variable.name.split(":")[0]
            self._accumulators[key] = tf.Variable(tf.zeros_like(variable), trainable=False, name=f"{name}/adagrad")
            if self.momentum > 0.0:
                self._velocities[key] = tf.Variable(tf.zeros_like(variable), trainable=False, name=f"{name}/momentum")

    def apply(self, grads_and_vars: Iterable[tuple[Optional[Gradient], tf.Variable]]) -> None:
        """One update of every variable with a gradient (dense tensors or tf.IndexedSlices)."""
        for gradient, variable in grads_and_vars:
            if gradient is None:
                continue
            if variable.ref() not in self._accumulators:
                raise ValueError(f"AdagradMomentum: variable {variable.name} was not passed to build()")
            if isinstance(gradient, tf.IndexedSlices):
                self._apply_sparse(gradient, variable)
            else:
                self._apply_dense(tf.convert_to_tensor(gradient), variable)

    def _apply_dense(self, gradient: tf.Tensor, variable: tf.Variable) -> None:
        accumulator = self._accumulators[variable.ref()]
        accumulated = accumulator + tf.square(gradient)
        accumulator.assign(accumulated)
        step = gradient / tf.sqrt(accumulated + self.epsilon)
        if self.momentum > 0.0:
            velocity = self._velocities[variable.ref()]
            moved = self.momentum * velocity - self.learning_rate * step
            velocity.assign(moved)
            variable.assign_add(moved)
        else:
            variable.assign_sub(self.learning_rate * step)

    def _apply_sparse(self, gradient: tf.IndexedSlices, variable: tf.Variable) -> None:
        rows, position = tf.unique(gradient.indices)
        summed = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        accumulator = self._accumulators[variable.ref()]
        accumulated = tf.gather(accumulator, rows) + tf.square(summed)
        accumulator.scatter_update(tf.IndexedSlices(accumulated, rows))
        step = summed / tf.sqrt(accumulated + self.epsilon)
        if self.momentum > 0.0:
            velocity = self._velocities[variable.ref()]
            moved = self.momentum * tf.gather(velocity, rows) - self.learning_rate * step
            velocity.scatter_update(tf.IndexedSlices(moved, rows))
            variable.scatter_add(tf.IndexedSlices(moved, rows))
        else:
            variable.scatter_sub(tf.IndexedSlices(self.learning_rate * step, rows))
