"""Item-based nearest neighbours (cosine) on the binary user x item training matrix.

Fit: ``X`` is the binary CSR ``[num_users, num_items]`` (``interaction_matrix``), ``C = X.T @ X``
the sparse co-occurrence counts and ``n_i = sqrt(C_ii)`` (distinct users of item i). Then

    sim[i, j] = C_ij / (n_i * n_j + shrink),   sim[i, i] = 0,

and each ROW ``i`` is cut to the ``num_neighbors`` largest entries (ties: lower item row first),
so ``similarity_[i]`` is item i's neighbour list; the truncated matrix is no longer symmetric.
Stored as float32 CSR ``[num_items, num_items]``; items absent from train have empty rows and
columns.

Score: ``scores = x_u @ similarity_`` (``x_u`` the binary history row), i.e. the sum of the
similarity rows of the user's (distinct) history items; float32 ``[batch, num_items]``, >= 0.
The zero diagonal means a history item is not scored by itself (it can still be scored by other
history items). Rows with no signal at all (empty history, or no history item has neighbours)
fall back to tiny popularity (``base.FALLBACK_SCALE``).

Cost: the sparse product is the bulk (roughly sum over users of |history|^2); the per-row top-k
cut is a loop over items with ``np.lexsort`` only on rows longer than ``num_neighbors``.
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tfrs_app.retrieval.baselines.base import Baseline, check_non_negative, interaction_matrix


def top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row of a CSR matrix (ties: lower column first)."""
    m = m.tocsr()
    m.sort_indices()
    indptr, indices, data = m.indptr, m.indices, m.data
    lengths = np.diff(indptr)
    if lengths.max(initial=0) <= k:
        return m.copy()
    keep = np.ones(data.size, dtype=bool)
    for r in np.flatnonzero(lengths > k):
        lo, hi = indptr[r], indptr[r + 1]
        order = np.lexsort((indices[lo:hi], -data[lo:hi]))  # by value desc, then column asc
        keep[lo + order[k:]] = False
    new_indptr = np.concatenate([[0], np.cumsum(np.minimum(lengths, k))])
    return sp.csr_matrix((data[keep], indices[keep], new_indptr), shape=m.shape)


class ItemKNN(Baseline):
    """Cosine item-item KNN; see the module docstring for the exact formulas."""

    name = "item_knn"
    required_columns = ("user_id",)

    def __init__(self, num_neighbors: int = 100, shrink: float = 0.0) -> None:
        if isinstance(num_neighbors, bool) or not isinstance(num_neighbors, numbers.Integral) or num_neighbors < 1:
            raise ValueError(f"num_neighbors must be a positive integer, got {num_neighbors!r}")
        self.num_neighbors = int(num_neighbors)
        self.shrink = check_non_negative("shrink", shrink)
        if self.shrink == float("inf"):
            raise ValueError("shrink must be finite, got inf")

    def _fit(self, train: pd.DataFrame, item_rows: np.ndarray) -> None:
        x = interaction_matrix(item_rows, self.num_items, users=train["user_id"].to_numpy())
        co = (x.T @ x).tocsr()  # float32 counts: exact below 2**24
        co.sort_indices()
        norms = np.sqrt(co.diagonal().astype(np.float64))
        rows = np.repeat(np.arange(self.num_items), np.diff(co.indptr))
        cols = co.indices
        denom = norms[rows] * norms[cols] + self.shrink
        sim = np.divide(co.data, denom, out=np.zeros(co.data.size), where=denom > 0)
        sim[rows == cols] = 0.0
        s = sp.csr_matrix((sim.astype(np.float32), cols, co.indptr), shape=co.shape)
        s.eliminate_zeros()
        self.similarity_ = top_k_per_row(s, self.num_neighbors)

    def _score(self, x: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray((x @ self.similarity_).toarray(), dtype=np.float32)
        return self.popularity_fallback(scores)
