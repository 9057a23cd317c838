"""Negatives beyond the batch: mixed negative sampling (Yang et al., WWW 2020) and hard negatives.

In-batch negatives are the batch's own positives, so an item is a negative about as often as
it is popular: tail items are almost never pushed away from a query, and the model learns
little about them. Mixed negative sampling adds ``num_sampled`` catalog items per step, drawn
from a second distribution q (uniform, or count ** alpha) and shared by every query of the
batch, as extra candidate rows for ``tfrs.tasks.Retrieval`` (which treats rows beyond the
batch as negatives for all queries).

logQ under the mixture: a column holding item j was produced by the batch with probability
proportional to B * p(j) (p: training frequency) and by the sampler with S * q(j), so its
correction is log q_mix(j) with q_mix(j) = (B p(j) + S q(j)) / (B + S), the same for an
in-batch column and a sampled column of the same item. In-batch frequency alone (logQ as in
Yi et al. 2019) would over-correct the popular items and under-correct the sampled tail.

Hard negatives: of the S sampled columns, each query keeps only its ``num_hard`` highest
scoring ones (accidental hits, i.e. the query's own positive, never count); the in-batch
columns are all kept. This goes through ``Retrieval``'s ``score_mask``.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf


def sampling_distribution(counts: np.ndarray, method: str, alpha: float) -> np.ndarray:
    """q over catalog rows [N] (float64, sums to 1): uniform, or counts ** alpha (counts + 1 so
    items without training events can still be drawn)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError("sampling_distribution: counts must be a non-empty [N] array")
    if method == "uniform":
        weights = np.ones_like(counts)
    elif method == "popularity":
        weights = (counts + 1.0) ** alpha
    else:
        raise ValueError(f"retrieval.negative_sampling: must be 'uniform' or 'popularity', got {method!r}")
    return weights / weights.sum()


def mixture_probability(batch_probability: tf.Tensor, sample_probability: tf.Tensor, batch_size: tf.Tensor,
                        num_sampled: int) -> tf.Tensor:
    """q_mix = (B p + S q) / (B + S), elementwise; p, q [C] float32, B a scalar."""
    b = tf.cast(batch_size, tf.float32)
    s = tf.constant(float(num_sampled))
    return (b * batch_probability + s * sample_probability) / (b + s)


class NegativeSampler(tf.keras.layers.Layer):
    """Draws ``num_sampled`` catalog rows per call (with replacement, shared across the batch).

    catalog: item_id / item_title / item_genres [N] str (the candidate tower's inputs);
    data_probability [N]: p, each item's training frequency (logQ's in-batch probability);
    sample_probability [N]: q. ``call(batch_ids [B]) -> (features of the S samples, their p [S],
    their q [S], q of the batch's items [B])``.
    """

    def __init__(self, catalog: Mapping[str, Sequence[str]], data_probability: np.ndarray,
                 sample_probability: np.ndarray, num_sampled: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if num_sampled <= 0:
            raise ValueError(f"retrieval.num_sampled_negatives: must be > 0 to sample, got {num_sampled}")
        ids = np.asarray(catalog["item_id"]).astype(str)
        if not (len(ids) == len(data_probability) == len(sample_probability)):
            raise ValueError("NegativeSampler: catalog, data_probability and sample_probability differ in length")
        self.num_sampled = int(num_sampled)
        self.features = {name: tf.constant(np.asarray(values).astype(str)) for name, values in catalog.items()}
        self.data_probability = tf.constant(np.asarray(data_probability, dtype=np.float32))
        self.sample_probability = tf.constant(np.asarray(sample_probability, dtype=np.float32))
        self.log_q = tf.constant(np.log(np.asarray(sample_probability, dtype=np.float64))[None, :], tf.float32)
        self.row_of = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.range(len(ids), dtype=tf.int64)), -1)
        self.seed = seed

    def call(self, batch_ids: tf.Tensor):
        rows = tf.random.categorical(self.log_q, self.num_sampled, dtype=tf.int64, seed=self.seed)[0]  # [S]
        sampled = {name: tf.gather(values, rows) for name, values in self.features.items()}
        batch_rows = self.row_of.lookup(batch_ids)
        # an id outside the catalog (never in training data built from it) gets the smallest q
        batch_q = tf.where(batch_rows >= 0, tf.gather(self.sample_probability, tf.maximum(batch_rows, 0)),
                           tf.reduce_min(self.sample_probability))
        return (sampled, tf.gather(self.data_probability, rows), tf.gather(self.sample_probability, rows), batch_q)


def hard_negative_mask(query: tf.Tensor, sampled_candidates: tf.Tensor, batch_ids: tf.Tensor,
                       sampled_ids: tf.Tensor, num_in_batch: tf.Tensor, num_hard: int) -> tf.Tensor:
    """[B, B + S] bool: every in-batch column, and per query its ``num_hard`` best-scoring sampled
    columns that are not its own positive item (an accidental hit is never a hard negative)."""
    scores = tf.linalg.matmul(query, sampled_candidates, transpose_b=True)  # [B, S]
    hit = tf.equal(batch_ids[:, None], sampled_ids[None, :])
    scores = tf.where(hit, tf.fill(tf.shape(scores), -np.inf), scores)
    k = tf.minimum(num_hard, tf.shape(scores)[1])
    kth = tf.math.top_k(scores, k=k).values[:, -1:]  # [B, 1]: the k-th best sampled score (ties may add rows)
    keep = tf.logical_and(scores >= kth, tf.logical_not(hit))  # [B, S]
    return tf.concat([tf.ones(tf.stack([tf.shape(query)[0], num_in_batch]), tf.bool), keep], axis=1)
