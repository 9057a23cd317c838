"""Uncertainty buckets: quantile edges of the predicted std, fitted on validation data.

A bucket groups examples whose MC-dropout std is alike, so that each bucket can get its own
score threshold (``tfrs_app.decision.thresholds``). The rule is, for every caller:

    bucket = np.searchsorted(edges, std, side="right")      # numpy (here)
    bucket = tf.searchsorted(edges, std, side="right")      # TensorFlow (the serving signature)

so bucket 0 holds the lowest std, and a std equal to an edge goes to the bucket *above* it.
Both functions return, for each std, the number of edges <= std; the serving graph must use
``side="right"`` too, or examples sitting exactly on an edge change bucket.

Edges are observed std values (not interpolated between two of them): an edge of a float32
std stays exactly representable in float32, so a float32 serving graph puts every validation
example in the same bucket as numpy does here.
"""
from __future__ import annotations

import numpy as np


def bucket_edges(std: np.ndarray, num_buckets: int) -> np.ndarray:
    """Inner edges [<= num_buckets - 1] (float64, strictly increasing) of ``num_buckets``
    quantile buckets of ``std`` [N].

    The edge for quantile q = k / num_buckets is the sorted std at position round(q * N): about
    q * N examples lie strictly below it. Duplicate edges are dropped, as are edges equal to the
    minimum std (their lower bucket would be empty), so tied std values always share a bucket
    and heavily tied data yields fewer buckets than asked for (a single constant std: none).
    """
    std = np.asarray(std, dtype=np.float64)
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, (int, np.integer)) or num_buckets < 1:
        raise ValueError(f"num_buckets: must be an integer >= 1, got {num_buckets!r}")
    if std.ndim != 1 or std.size == 0:
        raise ValueError(f"std: expected a non-empty 1-D array, got shape {std.shape}")
    bad = np.flatnonzero(~np.isfinite(std))
    if bad.size:
        raise ValueError(f"std: {bad.size} non-finite values, the first at index {bad[0]} ({std[bad[0]]})")
    ordered = np.sort(std)
    n = ordered.size
    positions = np.floor(np.arange(1, num_buckets) * n / num_buckets + 0.5).astype(np.int64)
    positions = np.clip(positions, 0, n - 1)
    edges = np.unique(ordered[positions])
    return edges[edges > ordered[0]]


def assign_buckets(std: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket index [N] int64 in 0..len(edges) of each std [N]: ``searchsorted(edges, std,
    side="right")``, the rule the TensorFlow serving graph reproduces with ``tf.searchsorted``."""
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or (edges.size > 1 and not np.all(np.diff(edges) > 0)):
        raise ValueError(f"edges: expected a strictly increasing 1-D array, got {edges.tolist()}")
    return np.searchsorted(edges, np.asarray(std, dtype=np.float64), side="right").astype(np.int64)


def placebo_buckets(buckets: np.ndarray, seed: int) -> np.ndarray:
    """A random permutation of ``buckets`` [N]: random buckets with the same sizes.

    The control for per-bucket thresholds: whatever a policy gains on these buckets came from
    extra freedom (more thresholds fitted to noise), not from the uncertainty estimate.
    """
    return np.random.default_rng(seed).permutation(np.asarray(buckets))
