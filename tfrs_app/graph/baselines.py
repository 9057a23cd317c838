"""Related-item baselines, as scorers over catalog rows (``graph/evaluate.py``).

- ``CooccurrenceScorer``: directed co-occurrence, P(B after A) = count(A -> B) / occurrences(A)
  over every "consumed after" pair of the known events (no count threshold: the strongest form
  of the counting baseline), ties broken by how often B follows anything (in-popularity), so an
  item with no pairs still gets the most-followed items.
- ``EmbeddingScorer``: cosine of any [N, D] item vectors (the retrieval candidate tower's, or a
  symmetric model's); with a second table, source(A) . target(B).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tfrs_app.graph.edges import DAY, ordered_events, pairs


class CooccurrenceScorer:
    def __init__(self, events: pd.DataFrame, item_ids: np.ndarray, window_days: float, max_next: int):
        n = len(item_ids)
        users, rows, times, _ = ordered_events(events, item_ids)
        before, after = (rows[at] for at in pairs(users, rows, times, max_next, window_days * DAY, strictly_later=True))
        counts = sp.csr_matrix((np.ones(len(before), np.float64), (before, after)), shape=(n, n))
        counts.sum_duplicates()
        occurrences = np.maximum(np.bincount(rows, minlength=n), 1).astype(np.float64)
        self.conditional = sp.diags(1.0 / occurrences) @ counts
        followed = np.bincount(after, minlength=n).astype(np.float64)
        self.prior = 1e-6 * followed / max(followed.max(), 1.0)  # below any observed P(B | A)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return self.conditional[np.asarray(rows)].toarray() + self.prior[None, :]


class EmbeddingScorer:
    def __init__(self, source: np.ndarray, target: Optional[np.ndarray] = None, normalise: bool = True):
        norm = (lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)) if normalise else (lambda x: x)
        self.source = norm(np.asarray(source, np.float32))
        self.target = self.source if target is None else norm(np.asarray(target, np.float32))

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return self.source[np.asarray(rows)] @ self.target.T
