"""Shared plumbing for the classical retrieval baselines: input checks, the binary interaction
matrix, and the popularity fallback for users the model cannot say anything about.

Shapes (every baseline):

* ``fit(train, num_items, item_rows)``: ``train`` is the event log (columns ``user_id`` str,
  ``item_id`` str, ``timestamp`` int64 unix seconds); ``item_rows`` is int64 ``[len(train)]``, each
  event's catalog row in ``[0, num_items)``. The caller owns the id -> row mapping, so items of the
  catalog that never occur in train are simply rows with no interactions.
* ``score(histories)``: ``histories[u]`` is an integer array of the catalog rows query user ``u``
  interacted with (all of them; may be empty; duplicates count once). Returns float32
  ``[len(histories), num_items]``, higher = better. Seen items are *not* masked here: excluding
  them is the caller's job (``evaluate.top_k`` takes an ``exclude`` list).

Numpy/scipy/pandas only, no TensorFlow: the package must import in milliseconds so benchmarks and
unit tests can use it without paying for a TF start-up.
"""
from __future__ import annotations

import abc
import math
import numbers
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: Users the model has no signal for (every score exactly 0, e.g. an empty history) get
#: ``FALLBACK_SCALE * count / max(count)`` instead: the popularity ranking, scaled so small that
#: it reads as "no evidence" next to a real score of the same model.
FALLBACK_SCALE = 1e-6


def _as_rows(values, num_items: int, what: str) -> np.ndarray:
    """``values`` as a 1-D int64 array of catalog rows, checked to lie in ``[0, num_items)``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer catalog rows, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= num_items:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{what} has catalog row {bad} outside [0, num_items={num_items})")
    return arr


def check_num_items(num_items) -> int:
    if isinstance(num_items, bool) or not isinstance(num_items, numbers.Integral) or num_items < 1:
        raise ValueError(f"num_items must be a positive integer, got {num_items!r}")
    return int(num_items)


def check_non_negative(name: str, value, *, positive: bool = False) -> float:
    """A finite (``inf`` is allowed unless ``positive``), non-negative (or positive) float hyper-parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (positive and (value == 0 or math.isinf(value))):
        raise ValueError(f"{name} must be {'positive and finite' if positive else 'non-negative'}, got {value!r}")
    return float(value)


def interaction_matrix(rows: Sequence[np.ndarray] | np.ndarray, num_items: int,
                       users: np.ndarray | pd.Series | None = None) -> sp.csr_matrix:
    """Binary user x item matrix, float32 CSR ``[num_users, num_items]`` (1 where the user touched
    the item, duplicates collapsed, sorted indices).

    Two call forms:

    * ``interaction_matrix(histories, num_items)``: ``histories`` is a sequence of integer arrays;
      matrix row ``u`` is ``histories[u]`` (an empty history gives an all-zero row).
    * ``interaction_matrix(item_rows, num_items, users=user_ids)``: a flat event log; ``item_rows``
      int ``[n_events]`` and ``users`` any labels ``[n_events]``. One matrix row per distinct user,
      in order of first appearance (``pd.factorize``); the order is irrelevant to ``X.T @ X``.

    Raises ``ValueError`` naming the argument when a row lies outside ``[0, num_items)`` or the
    two flat arrays differ in length.
    """
    num_items = check_num_items(num_items)
    if users is None:
        parts = [_as_rows(h, num_items, f"histories[{u}]") for u, h in enumerate(rows)]
        lengths = np.fromiter((p.size for p in parts), dtype=np.int64, count=len(parts))
        cols = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        user_codes = np.repeat(np.arange(len(parts), dtype=np.int64), lengths)
        num_users = len(parts)
    else:
        cols = _as_rows(rows, num_items, "item_rows")
        users = np.asarray(users)
        if users.shape != (cols.size,):
            raise ValueError(f"users has shape {users.shape} but item_rows has {cols.size} entries")
        user_codes, uniques = pd.factorize(users, sort=False)
        num_users = len(uniques)
    data = np.ones(cols.size, dtype=np.float32)
    x = sp.csr_matrix((data, (user_codes, cols)), shape=(num_users, num_items))
    x.sum_duplicates()
    x.data[:] = 1.0  # binary: a repeated (user, item) pair counts once
    return x


class Baseline(abc.ABC):
    """Base class: validates inputs, keeps the global item counts, fills the popularity fallback.

    Subclasses set ``name`` and implement ``_fit(train, item_rows)`` and ``_score(x)`` where ``x``
    is the binary CSR ``[batch, num_items]`` of the histories; ``_score`` returns a float array
    ``[batch, num_items]``.
    """

    name: ClassVar[str] = "baseline"
    #: train columns ``_fit`` reads (checked in ``fit``)
    required_columns: ClassVar[tuple[str, ...]] = ()

    num_items: int
    item_counts_: np.ndarray  # float64 [num_items]: training events per catalog row

    def fit(self, train: pd.DataFrame, num_items: int, item_rows: np.ndarray) -> "Baseline":
        num_items = check_num_items(num_items)
        if not isinstance(train, pd.DataFrame):
            raise ValueError(f"train must be a pandas DataFrame, got {type(train).__name__}")
        missing = [c for c in self.required_columns if c not in train.columns]
        if missing:
            raise ValueError(f"train lacks column(s) {missing} that {type(self).__name__} needs")
        if len(train) == 0:
            raise ValueError("train has no events")
        if np.ndim(item_rows) != 1 or len(item_rows) != len(train):
            raise ValueError(f"item_rows has shape {np.shape(item_rows)} but train has {len(train)} rows")
        rows = _as_rows(item_rows, num_items, "item_rows")
        self.num_items = num_items
        self.item_counts_ = np.bincount(rows, minlength=num_items).astype(np.float64)
        self._fit(train, rows)
        return self

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "item_counts_"):
            raise RuntimeError(f"{type(self).__name__}.score called before fit")
        x = interaction_matrix(histories, self.num_items)
        scores = np.asarray(self._score(x), dtype=np.float32)
        assert scores.shape == (x.shape[0], self.num_items), scores.shape
        return scores

    def popularity_fallback(self, scores: np.ndarray) -> np.ndarray:
        """In place: rows with every score exactly 0 (no signal: an empty history, or history items
        with no neighbours) get ``FALLBACK_SCALE * item_counts_ / max(item_counts_)``."""
        empty = ~scores.any(axis=1)
        if empty.any():
            scores[empty] = FALLBACK_SCALE * self.item_counts_ / self.item_counts_.max()
        return scores

    @abc.abstractmethod
    def _fit(self, train: pd.DataFrame, item_rows: np.ndarray) -> None:
        """Learns from the training events (their catalog rows given)."""

    @abc.abstractmethod
    def _score(self, x: sp.csr_matrix) -> np.ndarray:
        """Scores [batch, num_items] for the binary histories ``x`` [batch, num_items]."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_") and k != "num_items")
        return f"{type(self).__name__}({params})"
