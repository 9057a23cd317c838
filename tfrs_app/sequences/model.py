"""GRU4Rec in Keras: the current item in, a score for every candidate next item out.

Follows the authors' implementation (github.com/hidasib/GRU4Rec, Theano, and its official
PyTorch port) rather than the many third-party versions Hidasi and Czapp (2023) found flawed:

- Input: the one-hot item (``embedding_dim`` 0: the first layer's input weights are an item
  table, ``W_x0[item]``), a separate embedding (``embedding_dim`` > 0), or, with
  ``constrained_embedding``, the output item table itself (``E = W_y``, the original's
  ``constrained_embedding``; its width is then the last hidden size).
- GRU layers of ``hidden_sizes``, ``tanh`` candidate state, the original's gate equations:
  r, z = sigmoid(x W_rz + h U_rz + b_rz), h~ = tanh(x W_h + (r * h) U_h + b_h),
  h' = (1 - z) h + z h~. Dropout on the input embedding (``dropout_embedding``; with the one-hot
  input, on the first layer's output, which is that embedding) and on each layer's output
  (``dropout_hidden``); the dropped output is also the state carried on, as in the original's
  training graph.
- Scores: ``final_activation(h W_y[c]^T + b_y[c])`` against the candidates ``c`` only (the
  mini-batch's targets and the shared samples in training; the whole catalog at serving).
- Initialisation: uniform +-sqrt(6 / (fan_in + fan_out)) per matrix, the original's
  ``init_parameter_matrix``; biases zero.

Item rows: 0 is the unknown item (also padding); catalog item ``vocabulary[i]`` is row i + 1.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

from tfrs_app.sequences.losses import final_activation


def _glorot(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """The original's init_parameter_matrix: uniform in +-sqrt(6 / (rows + cols))."""
    bound = np.sqrt(6.0 / (rows + cols))
    return rng.uniform(-bound, bound, size=(rows, cols)).astype(np.float32)


class GRU4Rec(tf.keras.Model):
    """Session-based next-item model. Shapes: items [B] int (rows), states a list of [B, H_l]."""

    def __init__(self, num_items: int, hidden_sizes: Sequence[int] = (100,), embedding_dim: int = 0,
                 constrained_embedding: bool = True, dropout_embedding: float = 0.0, dropout_hidden: float = 0.0,
                 final_activation_name: str = "elu-1", seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if constrained_embedding and embedding_dim:
            raise ValueError("embedding_dim: must be 0 with constrained_embedding (the tied table is the output table)")
        self.num_items = int(num_items)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.embedding_dim = int(embedding_dim)
        self.constrained_embedding = bool(constrained_embedding)
        self.dropout_embedding = float(dropout_embedding)
        self.dropout_hidden = float(dropout_hidden)
        self.final_activation_name = final_activation_name
        self.activation = final_activation(final_activation_name)
        self.seed = int(seed)
        rng = np.random.default_rng(seed)
        rows, last = self.num_items + 1, self.hidden_sizes[-1]
        self.output_items = tf.Variable(_glorot(rows, last, rng), name="W_y")
        self.output_bias = tf.Variable(np.zeros(rows, np.float32), name="b_y")
        self.input_items = None  # separate embedding table (embedding_dim > 0)
        if self.embedding_dim:
            self.input_items = tf.Variable(_glorot(rows, self.embedding_dim, rng), name="E")
        one_hot = not self.embedding_dim and not self.constrained_embedding
        width = self.embedding_dim or last
        self.input_kernels, self.recurrent_kernels, self.biases = [], [], []
        for layer, size in enumerate(self.hidden_sizes):
            fan_in = rows if (layer == 0 and one_hot) else (width if layer == 0 else self.hidden_sizes[layer - 1])
            self.input_kernels.append(tf.Variable(_glorot(fan_in, 3 * size, rng), name=f"W_x{layer}"))
            self.recurrent_kernels.append(tf.Variable(
                np.concatenate([_glorot(size, size, rng) for _ in range(3)], axis=1), name=f"U_h{layer}"))
            self.biases.append(tf.Variable(np.zeros(3 * size, np.float32), name=f"b_h{layer}"))
        self.one_hot = one_hot

    # -- one step ---------------------------------------------------------------------------
    def zero_states(self, batch: tf.Tensor) -> list[tf.Tensor]:
        return [tf.zeros([batch, size]) for size in self.hidden_sizes]

    def step(self, items: tf.Tensor, states: Sequence[tf.Tensor], training: bool = False,
             seed: Optional[tf.Tensor] = None) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """items [B] int64 rows, states [[B, H_l]] -> (output [B, H_last], new states).

        ``seed`` (a [2] int tensor) drives the dropout masks of this step in training, so a
        seeded run is reproducible inside a tf.function loop."""
        items = tf.cast(items, tf.int64)
        if self.one_hot:
            x = None
            projected = tf.gather(self.input_kernels[0], items)  # one-hot input times W_x0
        else:
            table = self.input_items if self.input_items is not None else self.output_items
            x = tf.gather(table, items)
            if training and self.dropout_embedding > 0:
                x = self._dropout(x, self.dropout_embedding, seed, 0)
            projected = tf.matmul(x, self.input_kernels[0])
        new_states = []
        for layer, (size, state) in enumerate(zip(self.hidden_sizes, states)):
            if layer > 0:
                projected = tf.matmul(x, self.input_kernels[layer])
            projected = projected + self.biases[layer]
            recurrent = self.recurrent_kernels[layer]
            rz = tf.sigmoid(projected[:, :2 * size] + tf.matmul(state, recurrent[:, :2 * size]))
            reset, update = rz[:, :size], rz[:, size:]
            candidate = tf.tanh(projected[:, 2 * size:] + tf.matmul(reset * state, recurrent[:, 2 * size:]))
            x = (1.0 - update) * state + update * candidate
            # the one-hot input's first layer output is the embedding the original drops with dropout_p_embed
            rate = self.dropout_embedding if (layer == 0 and self.one_hot) else self.dropout_hidden
            if training and rate > 0:
                x = self._dropout(x, rate, seed, layer + 1)
            new_states.append(x)
        return x, new_states

    @staticmethod
    def _dropout(x: tf.Tensor, rate: float, seed: Optional[tf.Tensor], salt: int) -> tf.Tensor:
        if seed is None:
            return tf.nn.dropout(x, rate)
        return tf.nn.experimental.stateless_dropout(x, rate, seed=seed + tf.constant([0, 1], tf.int32) * salt)

    # -- scores -----------------------------------------------------------------------------
    def score(self, output: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """output [B, H], candidates [C] rows -> [B, C] scores (final activation applied)."""
        weights = tf.gather(self.output_items, candidates)
        return self.activation(tf.matmul(output, weights, transpose_b=True) + tf.gather(self.output_bias, candidates))

    def score_all(self, output: tf.Tensor, activate: bool = True) -> tf.Tensor:
        """output [B, H] -> [B, N] scores of catalog rows 1..N (column j is ``vocabulary[j]``);
        ``activate`` False: before the (monotone) final activation."""
        logits = tf.matmul(output, self.output_items[1:], transpose_b=True) + self.output_bias[1:]
        return self.activation(logits) if activate else logits

    # -- whole sequences --------------------------------------------------------------------
    def encode(self, sequences: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """sequences [B, L] int64 rows, oldest first, left-aligned; lengths [B] -> output [B, H]
        after each row's last item (zeros for length 0). Rows shorter than L keep their state
        past their end, so padding never changes a row's output."""
        sequences = tf.cast(sequences, tf.int64)
        lengths = tf.cast(lengths, tf.int32)
        batch = tf.shape(sequences)[0]
        states = self.zero_states(batch)
        output = tf.zeros([batch, self.hidden_sizes[-1]])

        def body(t, output, *states):
            new_output, new_states = self.step(sequences[:, t], list(states))
            live = (t < lengths)[:, None]
            return (t + 1, tf.where(live, new_output, output),
                    *[tf.where(live, new, old) for new, old in zip(new_states, states)])

        result = tf.while_loop(lambda t, *_: t < tf.shape(sequences)[1], body, (tf.constant(0), output, *states),
                               parallel_iterations=1)
        return result[1]

    def call(self, inputs, training=None):
        """{"sequences": [B, L], "lengths": [B]} -> [B, N] scores (Keras entry point)."""
        return self.score_all(self.encode(inputs["sequences"], inputs["lengths"]))

    def get_config(self) -> dict:
        return {"num_items": self.num_items, "hidden_sizes": list(self.hidden_sizes),
                "embedding_dim": self.embedding_dim, "constrained_embedding": self.constrained_embedding,
                "dropout_embedding": self.dropout_embedding, "dropout_hidden": self.dropout_hidden,
                "final_activation_name": self.final_activation_name, "seed": self.seed}


def pad_sequences(sequences: Sequence[np.ndarray], max_length: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Left-aligned [B, L] int64 (0 pads) and lengths [B]; ``max_length`` keeps each sequence's
    last items (a GRU's state after thousands of steps hardly remembers the first ones)."""
    if max_length is not None:
        sequences = [np.asarray(s)[-max_length:] for s in sequences]
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    out = np.zeros((len(sequences), max(int(lengths.max()) if len(lengths) else 0, 1)), dtype=np.int64)
    for row, s in enumerate(sequences):
        out[row, :len(s)] = s
    return out, lengths
