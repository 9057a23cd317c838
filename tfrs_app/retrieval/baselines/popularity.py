"""Non-personalised baselines: every query user gets the same float32 row ``[num_items]``.

* ``Popularity``: the number of training events per item (items absent from train score 0).
* ``RecentPopularity(window_days)``: events in the last ``window_days`` before the newest training
  event, plus a global-count tie-break that is always < 1, so it orders items with the same recent
  count (including the many with none) without ever overturning a recent difference.

The history is ignored (excluding seen items is the caller's job), so an empty history needs no
special case.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tfrs_app.retrieval.baselines.base import Baseline, check_non_negative

SECONDS_PER_DAY = 86400


class Popularity(Baseline):
    """score[u, i] = number of training events of item i (float32, same for every user)."""

    name = "popularity"

    def __init__(self) -> None:
        pass

    def _fit(self, train: pd.DataFrame, item_rows: np.ndarray) -> None:
        self.item_scores_ = self.item_counts_.astype(np.float32)

    def _score(self, x: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.item_scores_, (x.shape[0], 1))


class RecentPopularity(Popularity):
    """score[u, i] = recent_count[i] + global_count[i] / (max(global_count) + 1).

    ``recent_count`` counts events with ``timestamp >= max(train.timestamp) - window_days * 86400``.
    The tie-break lies in [0, 1) and recent counts are integers, so a recent difference always
    wins; computed in float64 and rounded to float32, which is monotone, so rounding can at most
    merge a tie-break (only when recent_count * (max_global + 1) > ~8e6), never reverse an order.
    ``window_days=0`` keeps only the events at the newest timestamp; ``inf`` keeps all (Popularity).
    """

    name = "recent_popularity"
    required_columns = ("timestamp",)

    def __init__(self, window_days: float = 30.0) -> None:
        self.window_days = check_non_negative("window_days", window_days)

    def _fit(self, train: pd.DataFrame, item_rows: np.ndarray) -> None:
        ts = train["timestamp"].to_numpy()
        if not np.issubdtype(ts.dtype, np.number):
            raise ValueError(f"train['timestamp'] must be numeric unix seconds, got dtype {ts.dtype}")
        self.cutoff_ = float(ts.max()) - self.window_days * SECONDS_PER_DAY
        recent = np.bincount(item_rows[ts >= self.cutoff_], minlength=self.num_items).astype(np.float64)
        tiebreak = self.item_counts_ / (self.item_counts_.max() + 1.0)
        self.item_scores_ = (recent + tiebreak).astype(np.float32)
