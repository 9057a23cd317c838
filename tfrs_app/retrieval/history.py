"""Order-aware history encoders for the query tower (``retrieval.history_encoder``).

Both share ``MaskedMeanEmbedding``'s contract: ids [B, L] int, id 0 = padding, most recent
FIRST -> [B, output_dim] float32, and a row with no history gives zeros (what the mean gives,
and what ``history_dropout`` trains). Padding is moved behind the items first (``pack``), so
where it sits and how much of it there is never changes the vector: [x, y, 0, 0], [x, 0, y]
and [x, y] encode alike. Stock TensorFlow ops only, so exported query towers load anywhere.
"""
from __future__ import annotations

from typing import Optional

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf


def pack(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """ids [B, L] (0 = padding anywhere) -> (packed [B, L + 1], lengths [B] int32).

    ``packed`` holds each row's items in their order, then padding; one padding column is
    appended so that even an [B, 0] history has a position to read.
    """
    ids = tf.pad(ids, [[0, 0], [0, 1]])
    is_padding = tf.cast(tf.equal(ids, 0), tf.int32)
    order = tf.argsort(is_padding, axis=1, stable=True)  # items first, each group in its order
    lengths = tf.shape(ids)[1] - tf.reduce_sum(is_padding, axis=1)
    return tf.gather(ids, order, batch_dims=1), lengths


class GRUHistoryEncoder(tf.keras.layers.Layer):
    """ids [B, L] -> [B, output_dim]: the last state of a GRU read oldest to newest.

    The packed row is reversed within its length (newest last) and padding is masked, so it
    is right-padded: the masked steps carry the state unchanged, and the layer can use cuDNN.
    cuDNN refuses rows whose mask is all False (tensorflow/tensorflow#36139), so a row with no
    history reads its padding step and is then zeroed.
    """

    def __init__(self, input_dim: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.embedding = tf.keras.layers.Embedding(input_dim, output_dim)
        self.gru = tf.keras.layers.GRU(output_dim)

    def call(self, ids: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        packed, lengths = pack(ids)
        oldest_first = tf.reverse_sequence(packed, lengths, seq_axis=1, batch_axis=0)
        mask = tf.sequence_mask(tf.maximum(lengths, 1), tf.shape(packed)[1])
        state = self.gru(self.embedding(oldest_first), mask=mask, training=training)
        return state * tf.cast(lengths > 0, state.dtype)[:, None]


class _SelfAttentionBlock(tf.keras.layers.Layer):
    """x [B, L, D], attention mask [B, L, L] -> [B, L, D]: pre-norm multi-head self-attention,
    then a point-wise two-layer feed-forward, each added back to its input (SASRec's block)."""

    def __init__(self, dim: int, num_heads: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.attention_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.attention = tf.keras.layers.MultiHeadAttention(num_heads, key_dim=-(-dim // num_heads), dropout=dropout)
        self.feed_forward_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.feed_forward = tf.keras.Sequential([tf.keras.layers.Dense(dim, activation="relu"),
                                                 tf.keras.layers.Dense(dim)])
        self.dropout = tf.keras.layers.Dropout(dropout)

    def call(self, x: tf.Tensor, attention_mask: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        normed = self.attention_norm(x)
        attended = self.attention(normed, normed, attention_mask=attention_mask, training=training)
        x = x + self.dropout(attended, training=training)
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)), training=training)


class TransformerHistoryEncoder(tf.keras.layers.Layer):
    """ids [B, L] -> [B, output_dim]: causal self-attention over the history, read at the newest
    item (SASRec, Kang & McAuley 2018).

    Item embedding (scaled by sqrt(D)) plus a learned position embedding; positions count from
    the newest item (0) in the packed row, so they do not depend on the padded length, and
    only the newest ``max_length`` items are read. Each position attends to itself and older
    items, never to padding; the newest position's output (after a final layer norm) is the
    encoding, zeros for a row with no history. Dropout (embeddings, attention weights and
    sublayer outputs) applies in training only.
    """

    def __init__(self, input_dim: int, output_dim: int, max_length: int, num_heads: int = 2, num_blocks: int = 1,
                 dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)
        self.scale = float(output_dim) ** 0.5
        self.embedding = tf.keras.layers.Embedding(input_dim, output_dim)
        self.position = tf.keras.layers.Embedding(self.max_length, output_dim, name="position")
        self.dropout = tf.keras.layers.Dropout(dropout)
        self.blocks = [_SelfAttentionBlock(output_dim, num_heads, dropout, name=f"block_{i}")
                       for i in range(num_blocks)]
        self.norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)

    def call(self, ids: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        packed, lengths = pack(ids)
        packed = packed[:, : self.max_length]
        lengths = tf.minimum(lengths, self.max_length)
        valid = tf.sequence_mask(lengths, tf.shape(packed)[1])  # [B, L]
        positions = tf.range(tf.shape(packed)[1])
        # most recent first: query i may read key j >= i (itself and older), keys that are items
        older = positions[None, :] >= positions[:, None]  # [L, L], [query, key]
        attention_mask = older[None] & valid[:, None, :]
        keep = tf.cast(valid, tf.float32)[..., None]
        x = self.embedding(packed) * self.scale + self.position(positions)[None]
        x = self.dropout(x, training=training) * keep
        for block in self.blocks:
            x = block(x, attention_mask, training=training) * keep
        return self.norm(x[:, 0]) * keep[:, 0]
