"""Candidate indexes: ScaNN sized to the catalog, with exact brute force as the reference.

TFRS's ScaNN layer defaults (100 leaves, 10 searched, no reordering) suit about 10k items.
``scann_params`` scales them with the catalog instead:

- num_leaves ~ sqrt(N): partitions of ~sqrt(N) points keep both the centroid scan and the
  leaf scan near sqrt(N) work;
- num_leaves_to_search = max(10, 2% of leaves) as the starting probe count;
- asymmetric hashing (2 dimensions per block) to score the probed points cheaply;
- exact reordering of max(400, 4k) candidates: near the top, scores are dense (at 1M the gap
  between the 10th and 11th neighbour is ~1e-3), so AH's ranking errors are what costs recall;
  ``bench/index.py`` measured recall@10 0.91 with 100 reordered and 0.98 with 400 at 1M, for
  +0.05 ms.

The probe count is then tuned on held-out queries (``tune_scann``): two-tower queries spread
over many partitions, so the number of leaves to search is doubled until ScaNN's recall@k
against exact search reaches a target (0.95 by default). The index is sized to the catalog
and its recall is a measured number, never an assumption.

Catalogs under ``MIN_SCANN_SIZE`` items get a single leaf (a full AH scan plus reordering):
partitioning a few hundred points buys nothing.

Both indexes are the TFRS layers, so they export inside a SavedModel unchanged.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

MIN_SCANN_SIZE = 1000


@dataclass(frozen=True)
class ScannParams:
    num_leaves: int
    num_leaves_to_search: int
    num_reordering_candidates: int
    dimensions_per_block: int = 2
    training_iterations: int = 12

    def to_dict(self) -> dict:
        return asdict(self)


def scann_params(num_candidates: int, k: int, num_leaves: Optional[int] = None,
                 num_leaves_to_search: Optional[int] = None, num_reordering_candidates: Optional[int] = None,
                 dimensions_per_block: int = 2) -> ScannParams:
    """Parameters for a catalog of ``num_candidates`` answering top-``k``; explicit values win."""
    if num_candidates <= 0:
        raise ValueError(f"index: the catalog is empty (num_candidates={num_candidates})")
    if num_leaves is None:
        num_leaves = 1 if num_candidates < MIN_SCANN_SIZE else int(round(math.sqrt(num_candidates)))
    num_leaves = max(1, min(num_leaves, num_candidates))
    if num_leaves_to_search is None:
        num_leaves_to_search = max(10, math.ceil(0.02 * num_leaves))
    num_leaves_to_search = max(1, min(num_leaves_to_search, num_leaves))
    if num_reordering_candidates is None:
        num_reordering_candidates = max(400, 4 * k)
    return ScannParams(num_leaves, num_leaves_to_search, min(num_reordering_candidates, num_candidates),
                       dimensions_per_block)


def build_scann(embeddings: np.ndarray, identifiers: np.ndarray, k: int, params: ScannParams, query_model=None):
    """A ``tfrs.layers.factorized_top_k.ScaNN`` over ``embeddings`` [N, D] named by ``identifiers`` [N]."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    layer = tfrs.layers.factorized_top_k.ScaNN(
        query_model=query_model,
        k=min(k, len(embeddings)),
        num_leaves=params.num_leaves,
        num_leaves_to_search=params.num_leaves_to_search,
        num_reordering_candidates=params.num_reordering_candidates,
        dimensions_per_block=params.dimensions_per_block,
        training_iterations=params.training_iterations,
    )
    return layer.index(tf.constant(embeddings, tf.float32), tf.constant(identifiers))


def build_brute_force(embeddings: np.ndarray, identifiers: np.ndarray, k: int, query_model=None):
    """Exact top-k (``tfrs.layers.factorized_top_k.BruteForce``): a matmul and ``tf.math.top_k``."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    layer = tfrs.layers.factorized_top_k.BruteForce(query_model=query_model, k=min(k, len(embeddings)))
    return layer.index(tf.constant(embeddings, tf.float32), tf.constant(identifiers))


def recall_against_exact(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k, both [Q, k]."""
    approx_ids = np.asarray(approx_ids)
    exact_ids = np.asarray(exact_ids)
    if approx_ids.shape != exact_ids.shape or approx_ids.ndim != 2:
        raise ValueError(f"recall_against_exact: shapes differ or are not [Q, k]: {approx_ids.shape} vs {exact_ids.shape}")
    hits = [len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx_ids, exact_ids)]
    return float(np.mean(hits) / exact_ids.shape[1])


def tune_scann(embeddings: np.ndarray, identifiers: np.ndarray, queries: np.ndarray, k: int, params: ScannParams,
               recall_k: int = 10, target_recall: float = 0.95):
    """Builds ScaNN with ``params``, doubling num_leaves_to_search until recall@recall_k on
    ``queries`` [Q, D] reaches ``target_recall`` (or every leaf is searched).

    Returns (ScaNN layer, BruteForce layer, final params, list of {leaves_to_search, recall, build s}).
    """
    brute = build_brute_force(embeddings, identifiers, k)
    trials = []
    while True:
        started = time.perf_counter()
        scann = build_scann(embeddings, identifiers, k, params)
        seconds = time.perf_counter() - started
        recall = measure_index(scann, brute, queries, recall_k)[f"recall@{recall_k}"]
        trials.append({"num_leaves_to_search": params.num_leaves_to_search, f"recall@{recall_k}": recall,
                       "build_seconds": seconds})
        if recall >= target_recall or params.num_leaves_to_search >= params.num_leaves:
            return scann, brute, params, trials
        params = replace(params, num_leaves_to_search=min(2 * params.num_leaves_to_search, params.num_leaves))


def measure_index(scann_layer, brute_force_layer, queries: np.ndarray, k: int) -> dict:
    """ScaNN's recall@k against exact search on ``queries`` [Q, D], and batched search times."""
    import tensorflow as tf

    q = tf.constant(queries, tf.float32)
    scann_layer(q[:1], k=k)
    brute_force_layer(q[:1], k=k)  # warm both
    start = time.perf_counter()
    _, approx = scann_layer(q, k=k)
    scann_s = time.perf_counter() - start
    start = time.perf_counter()
    _, exact = brute_force_layer(q, k=k)
    exact_s = time.perf_counter() - start
    return {
        f"recall@{k}": recall_against_exact(approx.numpy(), exact.numpy()),
        "num_queries": int(len(queries)),
        "scann_batch_ms": 1000 * scann_s,
        "brute_force_batch_ms": 1000 * exact_s,
    }
