"""The dual-embedding GNN over the item graph (DAEMON, ECML PKDD 2022; BLADE, WSDM 2023).

Shapes: N catalog items, D = ``embedding_dim``, K = neighbours per relation (padded with row N).

- Layer 1: source = target = the item's metadata encoding, the retrieval candidate tower's
  layers (id with id dropout, title tokens, genres -> MLP -> L2 norm), so an item with no
  edges, or one the model never saw, still has an embedding from its title and genres.
- Each hop (``hops`` of them, DAEMON eq. 3-4): an item's source embedding takes the mean
  **target** embedding of its out-neighbours and the mean **source** embedding of its similar
  items; its target embedding the mean **source** embedding of its in-neighbours and the mean
  **target** embedding of its similar items: s' = norm(s + W_s [s; mean t(out); mean s(sim)]),
  t' = norm(t + W_t [t; mean s(in); mean t(sim)]). The residual keeps a neighbourless item at
  its metadata encoding.
- ``dual=False`` is the symmetric baseline: one embedding e' = norm(e + W [e; mean e(out, in,
  sim)]), score e(A) . e(B) = e(B) . e(A).
- Score(A -> B) = source(A) . target(B) (cosine; / temperature in the loss).

Loss per batch of directed edges (a -> b): softmax cross-entropy of b against the batch's other
targets and ``num_negatives`` uniform items of the id vocabulary (accidental hits masked; with ``use_logq``
each column's logit less the log of its chance to be a column: edges are drawn by weight, so
popular targets fill the batch and would otherwise be pushed down, Yi et al. 2019), plus, for edges
whose reverse is not an edge, ``asymmetry_weight`` * softplus((score(b -> a) - score(a -> b)) /
temperature): the asymmetric term that makes the inbound direction score below the outbound.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

from tfrs_app.retrieval.towers import CandidateTower


def masked_mean(table: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Mean of ``table`` [N, D] rows at ``index`` [M, K] (value >= N = padding); zeros without any.

    A row-normalised [M, N] sparse matrix times the table: its gradient is a sparse transpose
    product, where gathering [M, K, D] would materialise (and back-propagate) every copy."""
    n = tf.shape(table, out_type=tf.int64)[0]
    index = tf.cast(index, tf.int64)
    width = tf.shape(index, out_type=tf.int64)[1]
    flat = tf.reshape(index, [-1])
    rows = tf.repeat(tf.range(tf.shape(index, out_type=tf.int64)[0]), width)
    valid = flat < n
    rows, cols = tf.boolean_mask(rows, valid), tf.boolean_mask(flat, valid)
    counts = tf.math.bincount(tf.cast(rows, tf.int32), minlength=tf.shape(index)[0], dtype=tf.float32)
    values = 1.0 / tf.gather(counts, rows)
    matrix = tf.sparse.SparseTensor(tf.stack([rows, cols], axis=1), values, [tf.shape(index, out_type=tf.int64)[0], n])
    return tf.sparse.sparse_dense_matmul(matrix, table)


class DualGraphModel(tf.keras.Model):
    """Item metadata + sampled neighbours -> (source [N, D], target [N, D]) for the whole catalog.

    The catalog's ids, titles and genres are fixed at construction (``item_ids`` etc., [N]);
    ``id_vocabulary`` (default: every catalog id) are the ids with their own embedding row;
    ``set_neighbours`` loads one epoch's samples into variables, so the compiled step never
    retraces. ``embed()`` returns both tables; ``encode(features)`` the metadata-only embeddings
    of any items (unknown ids included) as a node without neighbours would have them.
    """

    def __init__(self, item_ids: Sequence[str], titles: Sequence[str], genres: Sequence[str],
                 title_vocabulary: Sequence[str], genre_vocabulary: Sequence[str], max_neighbours: int,
                 embedding_dim: int = 64, hidden_layers: Sequence[int] = (128,), hops: int = 2, dual: bool = True,
                 temperature: float = 0.1, asymmetry_weight: float = 1.0, num_negatives: int = 256,
                 id_dropout: float = 0.2, seed: int = 0, id_vocabulary: Optional[Sequence[str]] = None,
                 use_logq: bool = True, cold_dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_items = len(item_ids)
        self.dual = bool(dual)
        self.temperature = float(temperature)
        self.asymmetry_weight = float(asymmetry_weight) if dual else 0.0
        self.num_negatives = int(num_negatives)
        self.seed = seed
        self.item_features = {"item_id": tf.constant(np.asarray(item_ids, dtype=str)),
                              "item_title": tf.constant(np.asarray(titles, dtype=str)),
                              "item_genres": tf.constant(np.asarray(genres, dtype=str))}
        vocabulary = list(item_ids if id_vocabulary is None else id_vocabulary)
        self.vocabularies = {"ids": vocabulary, "titles": list(title_vocabulary), "genres": list(genre_vocabulary)}
        self.encoder = CandidateTower(vocabulary, list(title_vocabulary), list(genre_vocabulary), embedding_dim,
                                      hidden_layers, embedding_dim, id_dropout, l2_normalize=True, seed=seed,
                                      name="metadata")
        dense = lambda name: tf.keras.layers.Dense(embedding_dim, name=name)  # noqa: E731
        self.source_layers = [dense(f"source_hop{h}") for h in range(hops)]
        self.target_layers = [dense(f"target_hop{h}") for h in range(hops)] if dual else []
        pad = np.full((self.num_items, max_neighbours), self.num_items, dtype=np.int32)
        self.neighbours = {name: tf.Variable(pad, trainable=False, name=f"neighbours_{name}")
                           for name in ("out", "inc", "sim")}
        self.use_logq = bool(use_logq)
        self.cold_dropout = float(cold_dropout)
        # Sampled negatives come from the items with an id row only: an item the training events
        # never show would otherwise only ever be a negative, and be pushed below every query
        # before it has a single event (what cold start must not do).
        known = np.flatnonzero(np.isin(np.asarray(item_ids, dtype=str), np.asarray(vocabulary, dtype=str)))
        self.negative_rows = tf.constant(known if len(known) else np.arange(self.num_items), tf.int32)
        # [N] share of training edges into each item: in-batch targets are drawn from it (set_target_prior)
        self.target_prior = tf.Variable(tf.fill([self.num_items], 1.0 / max(self.num_items, 1)), trainable=False,
                                        name="target_prior")

    def set_target_prior(self, prior: np.ndarray) -> None:
        """[N] probability that a training edge points at each item (edges are drawn by weight)."""
        self.target_prior.assign(np.asarray(prior, np.float32))

    def set_neighbours(self, neighbours) -> None:
        for name, variable in self.neighbours.items():
            variable.assign(getattr(neighbours, name))

    def _hop(self, hop: int, source: tf.Tensor, target: tf.Tensor, index: dict):
        norm = lambda x: tf.math.l2_normalize(x, axis=1)  # noqa: E731
        if not self.dual:
            every = tf.concat([index["out"], index["inc"], index["sim"]], axis=1)
            update = self.source_layers[hop](tf.concat([source, masked_mean(source, every)], axis=1))
            embedding = norm(source + update)
            return embedding, embedding
        new_source = self.source_layers[hop](tf.concat([source, masked_mean(target, index["out"]),
                                                        masked_mean(source, index["sim"])], axis=1))
        new_target = self.target_layers[hop](tf.concat([target, masked_mean(source, index["inc"]),
                                                        masked_mean(target, index["sim"])], axis=1))
        return norm(source + new_source), norm(target + new_target)

    def embed(self, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(source [N, D], target [N, D]) of the catalog over the current neighbour samples.

        In training, a ``cold_dropout`` share of the items lose their id (the OOV row) and all
        their neighbours at once, as a new item would (DropoutNet, Volkovs et al. 2017): the
        metadata-only path that serves cold items is trained against the warm ones."""
        features, index = self.item_features, {name: variable for name, variable in self.neighbours.items()}
        if training and self.cold_dropout > 0:
            cold = tf.random.uniform([self.num_items], seed=self.seed + 7) < self.cold_dropout
            features = {**features, "item_id": tf.where(cold, tf.constant(""), features["item_id"])}
            index = {name: tf.where(cold[:, None], tf.fill(tf.shape(value), self.num_items), value)
                     for name, value in index.items()}
        source = target = self.encoder(features, training=training)
        for hop in range(len(self.source_layers)):
            source, target = self._hop(hop, source, target, index)
        return source, target

    def encode(self, features: dict, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(source [B, D], target [B, D]) of items from metadata alone: item_id, item_title,
        item_genres [B] str; every hop sees no neighbours (an unknown id is the OOV row)."""
        source = target = self.encoder(features, training=training)
        empty = tf.fill([tf.shape(source)[0], 1], tf.shape(source)[0])  # all padding
        index = {"out": empty, "inc": empty, "sim": empty}
        for hop in range(len(self.source_layers)):
            source, target = self._hop(hop, source, target, index)
        return source, target

    def call(self, inputs=None, training: bool = False):
        return self.embed(training=training)

    def edge_loss(self, src: tf.Tensor, dst: tf.Tensor, one_way: tf.Tensor) -> tf.Tensor:
        """Mean loss over a batch of edges src -> dst ([B] int32 rows; edges are drawn by weight, so
        each counts once); one_way [B] in [0, 1] (or bool) scales each edge's asymmetry term
        (``ItemGraph.direction_evidence``)."""
        source, target = self.embed(training=True)
        query, positive = tf.gather(source, src), tf.gather(target, dst)
        pick = tf.random.uniform([self.num_negatives], 0, tf.shape(self.negative_rows)[0], dtype=tf.int32, seed=self.seed)
        negatives = tf.gather(self.negative_rows, pick)
        columns = tf.concat([dst, negatives], axis=0)  # [B + M]
        logits = tf.matmul(query, tf.gather(target, columns), transpose_b=True) / self.temperature
        if self.use_logq:  # sampled softmax correction: a column's chance of being in the batch
            batch, sampled = tf.cast(tf.shape(dst)[0], tf.float32), float(self.num_negatives)
            uniform = sampled / tf.cast(tf.shape(self.negative_rows)[0], tf.float32)
            chance = (batch * tf.gather(self.target_prior, columns) + uniform) / (batch + sampled)
            logits -= tf.math.log(tf.maximum(chance, 1e-12))[None, :]
        same = tf.equal(dst[:, None], columns[None, :])  # accidental hits: the row's own target elsewhere
        own = tf.pad(tf.eye(tf.shape(dst)[0], dtype=tf.bool), [[0, 0], [0, self.num_negatives]])
        logits = tf.where(same & ~own, tf.fill(tf.shape(logits), -1e9), logits)
        labels = tf.range(tf.shape(dst)[0])
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        if self.asymmetry_weight > 0:
            forward = tf.reduce_sum(query * positive, axis=1)
            backward = tf.reduce_sum(tf.gather(source, dst) * tf.gather(target, src), axis=1)
            loss += self.asymmetry_weight * tf.cast(one_way, tf.float32) * tf.nn.softplus(
                (backward - forward) / self.temperature)
        return tf.reduce_mean(loss)

