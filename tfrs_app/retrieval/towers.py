"""Query and candidate towers. Layers take typed arguments, never config objects.

Both towers take a dict of raw tensors (strings, int64 timestamps), so the same code runs in
training, evaluation and the exported serving signature. Output: [batch, output_dim] float32,
L2-normalised when ``l2_normalize`` (scores are then cosines, scaled by the task temperature).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

from tfrs_app.config import HISTORY_ENCODERS
from tfrs_app.data.schema import GENRE_SEPARATOR
from tfrs_app.retrieval.history import GRUHistoryEncoder, TransformerHistoryEncoder


class MaskedMeanEmbedding(tf.keras.layers.Layer):
    """Mean of the embeddings of ids [B, L] where id 0 is padding; zeros for an all-padding row.

    Used for pooled history, title tokens and genres: bags of variable length.
    """

    def __init__(self, input_dim: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.embedding = tf.keras.layers.Embedding(input_dim, output_dim)

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        mask = tf.cast(tf.not_equal(ids, 0), tf.float32)[..., None]  # [B, L, 1]
        total = tf.reduce_sum(self.embedding(ids) * mask, axis=1)
        return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


class IdEmbedding(tf.keras.layers.Layer):
    """String id -> embedding, with index 0 the out-of-vocabulary row.

    In training, ids are replaced by OOV with probability ``dropout``, so the OOV row learns a
    sensible "unknown" vector and the other features learn to carry the signal (cold start).
    """

    def __init__(self, vocabulary: Sequence[str], output_dim: int, dropout: float = 0.0, seed: int = 0,
                 bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.lookup = tf.keras.layers.StringLookup(vocabulary=list(vocabulary), num_oov_indices=1)
        self.embedding = tf.keras.layers.Embedding(len(vocabulary) + 1, output_dim)
        # A scalar per id, read on the same (dropped-out) index: the OOV row's bias is the prior of
        # an unknown id. Zero-initialised, so training starts from the bias-free model.
        self.bias = tf.keras.layers.Embedding(len(vocabulary) + 1, 1, embeddings_initializer="zeros",
                                              name="bias") if bias else None
        self.dropout = dropout
        self.seed = seed

    def call(self, ids: tf.Tensor, training: Optional[bool] = None):
        """[B, output_dim]; with ``bias``, ([B, output_dim], [B, 1])."""
        index = self.lookup(ids)
        if training and self.dropout > 0:
            drop = tf.random.uniform(tf.shape(index), seed=self.seed) < self.dropout
            index = tf.where(drop, tf.zeros_like(index), index)
        if self.bias is not None:
            return self.embedding(index), self.bias(index)
        return self.embedding(index)


def history_encoder_layer(kind: str, input_dim: int, output_dim: int, max_length: int,
                          name: str = "history") -> tf.keras.layers.Layer:
    """The ``kind`` of HISTORY_ENCODERS: ids [B, L] (0 = padding, most recent first) -> [B, output_dim],
    zeros for a row with no history. ``max_length``: the newest items the transformer reads."""
    if kind == "mean":
        return MaskedMeanEmbedding(input_dim, output_dim, name=name)
    if kind == "gru":
        return GRUHistoryEncoder(input_dim, output_dim, name=name)
    if kind == "transformer":
        return TransformerHistoryEncoder(input_dim, output_dim, max_length, name=name)
    raise ValueError(f"history_encoder: must be one of {list(HISTORY_ENCODERS)}, got {kind!r}")


def _mlp(hidden_layers: Sequence[int], output_dim: int, name: str) -> tf.keras.Sequential:
    layers = [tf.keras.layers.Dense(size, activation="relu") for size in hidden_layers]
    layers.append(tf.keras.layers.Dense(output_dim))
    return tf.keras.Sequential(layers, name=name)


class _Tower(tf.keras.Model):
    """Concatenates feature embeddings, then an MLP; an id-only tower with no hidden layers and
    a matching width is the bare embedding (the TFRS tutorial model)."""

    def _setup_head(self, hidden_layers: Sequence[int], output_dim: int, bare: bool, l2_normalize: bool,
                    with_bias: bool = False) -> None:
        self.head = None if bare else _mlp(hidden_layers, output_dim, name="mlp")
        self.l2_normalize = l2_normalize
        self.with_bias = with_bias  # the last output column is the bias one (see _finish)

    def _finish(self, parts: list[tf.Tensor], bias: Optional[tf.Tensor] = None) -> tf.Tensor:
        """[B, output_dim], or [B, output_dim + 1] with the bias column: the query tower appends
        1 and the candidate tower the item's bias b_i, so query . candidate = q . c + b_i stays one
        dot product (ScaNN, exact and the exports need nothing else)."""
        x = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        if self.head is not None:
            x = self.head(x)
        x = tf.math.l2_normalize(x, axis=1) if self.l2_normalize else x
        if self.with_bias:
            x = tf.concat([x, tf.ones_like(x[:, :1]) if bias is None else bias], axis=1)
        return x


class QueryTower(_Tower):
    """features -> [B, output_dim], [B, output_dim + 1] with ``item_bias`` (a constant 1 last).

    features: user_id [B] str; user_<f> [B] str for each name in ``user_feature_vocabs``;
    timestamp [B] int64 (Unix s); history [B, L] str, any L, "" pads, unknown ids allowed.

    ``history_encoder`` (with ``use_history``): ``mean`` (a bag), ``gru`` or ``transformer``
    (order-aware, ``retrieval/history.py``); the transformer reads the newest ``history_length``.
    """

    def __init__(self, user_vocabulary: Sequence[str], item_vocabulary: Sequence[str],
                 user_feature_vocabs: Mapping[str, Sequence[str]], time_mean: float, time_std: float,
                 time_boundaries: Sequence[float], embedding_dim: int = 64, hidden_layers: Sequence[int] = (128,),
                 output_dim: int = 64, id_dropout: float = 0.1, use_history: bool = True, use_time: bool = True,
                 l2_normalize: bool = True, history_dropout: float = 0.0,
                 time_range: Sequence[float] = (), item_bias: bool = False, history_encoder: str = "mean",
                 history_length: int = 10, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        # built (so history_encoder is checked) even when use_history leaves it unused
        history_layer = history_encoder_layer(history_encoder, len(item_vocabulary) + 2, embedding_dim, history_length)
        self.history_dropout = history_dropout
        self.user = IdEmbedding(user_vocabulary, embedding_dim, id_dropout, seed, name="user_id")
        self.user_features = {
            name: tf.keras.Sequential([
                tf.keras.layers.StringLookup(vocabulary=list(vocab), num_oov_indices=1),
                tf.keras.layers.Embedding(len(vocab) + 1, max(8, embedding_dim // 4)),
            ], name=name)
            for name, vocab in sorted(user_feature_vocabs.items())
        }
        self.history = None
        if use_history:
            self.history_lookup = tf.keras.layers.StringLookup(vocabulary=list(item_vocabulary), mask_token="",
                                                               num_oov_indices=1)
            self.history = history_layer
            self.history_seed = seed + 2
        self.use_time = use_time
        if use_time:
            self.time_mean, self.time_std = float(time_mean), float(time_std)
            # A request after the training period is read as its last moment: a linear time input
            # extrapolated past the data moves every query (tested on the synthetic time split).
            self.time_range = tuple(float(t) for t in time_range) or (float("-inf"), float("inf"))
            self.time_bucket = tf.keras.layers.Discretization(bin_boundaries=list(time_boundaries))
            self.time_embedding = tf.keras.layers.Embedding(len(time_boundaries) + 1, max(8, embedding_dim // 4))
        bare = not (self.user_features or use_history or use_time or hidden_layers) and embedding_dim == output_dim
        self._setup_head(hidden_layers, output_dim, bare, l2_normalize, with_bias=item_bias)

    @property
    def user_feature_names(self) -> tuple[str, ...]:
        """The ``user_<f>`` inputs this tower reads (the serving signature takes exactly these)."""
        return tuple(sorted(self.user_features))

    def call(self, features: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        parts = [self.user(features["user_id"], training=training)]
        for name, layer in self.user_features.items():
            parts.append(layer(features[name]))
        if self.history is not None:
            ids = self.history_lookup(features["history"])  # [B, L], 0 = padding
            if training and self.history_dropout > 0:
                # whole histories blanked for a share of the rows: the user id and the other
                # features must carry the query too (and the "no history" input is trained)
                keep = tf.random.uniform(tf.shape(ids)[:1], seed=self.history_seed) >= self.history_dropout
                ids = tf.where(keep[:, None], ids, tf.zeros_like(ids))
            parts.append(self.history(ids, training=training))
        if self.use_time:
            seconds = tf.clip_by_value(tf.cast(features["timestamp"], tf.float64), *self.time_range)
            parts.append(tf.cast((seconds - self.time_mean) / self.time_std, tf.float32)[:, None])
            parts.append(self.time_embedding(self.time_bucket(seconds)))
        return self._finish(parts)


class CandidateTower(_Tower):
    """features -> [B, output_dim], [B, output_dim + 1] with ``item_bias`` (b_i last).
    features: item_id, item_title, item_genres ("|"-joined), all [B] str."""

    def __init__(self, item_vocabulary: Sequence[str], title_vocabulary: Sequence[str], genre_vocabulary: Sequence[str],
                 embedding_dim: int = 64, hidden_layers: Sequence[int] = (128,), output_dim: int = 64,
                 id_dropout: float = 0.1, use_text: bool = True, use_genres: bool = True, l2_normalize: bool = True,
                 item_bias: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.item = IdEmbedding(item_vocabulary, embedding_dim, id_dropout, seed + 1, bias=item_bias, name="item_id")
        self.title = None
        if use_text and title_vocabulary:
            self.title_vectorizer = tf.keras.layers.TextVectorization(vocabulary=list(title_vocabulary))
            self.title = MaskedMeanEmbedding(len(title_vocabulary) + 2, embedding_dim, name="title")
        self.genres = None
        if use_genres and genre_vocabulary:
            self.genre_lookup = tf.keras.layers.StringLookup(vocabulary=list(genre_vocabulary), mask_token="",
                                                             num_oov_indices=1)
            self.genres = MaskedMeanEmbedding(len(genre_vocabulary) + 2, max(8, embedding_dim // 4), name="genres")
        bare = self.title is None and self.genres is None and not hidden_layers and embedding_dim == output_dim
        self._setup_head(hidden_layers, output_dim, bare, l2_normalize, with_bias=item_bias)

    def call(self, features: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        item, bias = self.item(features["item_id"], training=training), None
        if self.with_bias:
            item, bias = item
        parts = [item]
        if self.title is not None:
            parts.append(self.title(self.title_vectorizer(features["item_title"])))
        if self.genres is not None:
            tokens = tf.strings.split(features["item_genres"], GENRE_SEPARATOR).to_tensor("")
            parts.append(self.genres(self.genre_lookup(tokens)))
        return self._finish(parts, bias)
