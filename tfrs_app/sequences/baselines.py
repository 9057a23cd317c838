"""Classic session-based baselines: popularity ("POP" of the GRU4Rec papers) and session-kNN.

Sessions (every baseline):

* ``fit(offsets, items, num_items, session_times=None)``: session ``s`` is
  ``items[offsets[s]:offsets[s + 1]]``, oldest event first; ``offsets`` int ``[S + 1]`` starts at
  0, never decreases (an empty session is allowed and ignored) and ends at ``len(items)``;
  ``items`` int ``[E]`` are catalog rows in ``[0, num_items)``; ``session_times`` ``[S]`` are the
  sessions' start times (``None``: the given order is time order, the last session the newest).
* ``score(prefixes)``: ``prefixes[q]`` is the integer array of catalog rows of query session
  ``q`` so far, oldest first (may be empty). Returns float32 ``[len(prefixes), num_items]``,
  higher = better. Items of the prefix are *not* masked here: excluding them is the evaluator's
  choice (``tfrs_app.sequences.evaluate``).

``SessionKNN`` follows Jannach & Ludewig, "When recurrent neural networks meet the neighborhood
for session-based recommendation" (RecSys 2017), as evaluated by Ludewig & Jannach (2018):

* sessions are binary item sets (a repeated item counts once);
* the candidate neighbours of a query are the ``sample_size`` most recent training sessions
  sharing at least one item with it (ties in time: the later-given session is the more recent);
* ``sim(a, b) = sum_{i in a ∩ b} w_i / sqrt(|a| |b|)`` with ``w_i = 1``: the cosine of the binary
  vectors; the ``k`` most similar candidates are kept (ties: the more recent first);
* ``score[i] = sum of sim over the kept neighbours that contain item i``.

``weighting="linear"`` is the position weighting of V-SKNN (Ludewig & Jannach 2018; session-rec's
``linear``): the query's last item weighs 1, each step back 0.1 less, so its 10th-last and older
items weigh 0 and take no part (they neither find neighbours nor count in ``|a|``). The weights enter the
numerator of the same cosine; session-rec's V-SKNN uses the unnormalised weighted dot product,
which differs by the neighbour's ``1 / sqrt(|b|)``. A repeated query item takes the weight of
its latest position.

Query items never seen in training are dropped first (they match no session and do not count in
``|a|``); a query with no known item left has no neighbour and gets the popularity fallback of
the retrieval baselines (``FALLBACK_SCALE * count / max(count)``).

Cost: per chunk of ``SCORE_CHUNK`` queries one sparse product query x session (the
intersections), a per-row cut to the most recent ``sample_size`` (sessions are stored newest
first, so that is the first entries of each sorted row), a stable top-``k`` on a padded
``[chunk, <= sample_size]`` array, and one sparse product neighbours x item.

Numpy/scipy only, no TensorFlow, like ``tfrs_app.retrieval.baselines``.
"""
from __future__ import annotations

import abc
import numbers
from typing import ClassVar, Sequence

import numpy as np
import scipy.sparse as sp

from tfrs_app.retrieval.baselines.base import FALLBACK_SCALE, _as_rows, check_num_items, interaction_matrix

#: Queries scored per sparse product in ``SessionKNN.score`` (bounds the intersection matrix).
SCORE_CHUNK = 1024
#: V-SKNN ``linear``: the weight drops by 1 / LINEAR_STEPS per step back from the query's last item.
#: Weights are kept as the integers 1 .. LINEAR_STEPS and divided out after the intersection sums,
#: so equal similarities stay exactly equal and their tie-break (recency) is not float noise.
LINEAR_STEPS = 10
WEIGHTINGS = ("none", "linear")


def check_sessions(offsets, items, num_items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets int64 [S + 1], items int64 [E])`` checked: ``offsets`` 1-D integer, starting at 0,
    non-decreasing, ending at ``len(items)``; ``items`` 1-D integer, in ``[0, num_items)`` when
    ``num_items`` is given (else non-negative). Raises ``ValueError`` naming the argument."""
    off = np.asarray(offsets)
    if off.ndim != 1 or off.size < 1 or not np.issubdtype(off.dtype, np.integer):
        raise ValueError(f"offsets must be a non-empty 1-D integer array, got shape {off.shape} dtype {off.dtype}")
    off = off.astype(np.int64, copy=False)
    arr = np.asarray(items)
    if num_items is None:
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"items must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and arr.min() < 0:
            raise ValueError(f"items has negative catalog row {int(arr.min())}")
    else:
        arr = _as_rows(arr, num_items, "items")
    if off[0] != 0 or off[-1] != arr.size:
        raise ValueError(f"offsets must start at 0 and end at len(items)={arr.size}, got {off[0]} .. {off[-1]}")
    steps = np.diff(off)
    if steps.size and steps.min() < 0:
        bad = int(np.argmax(steps < 0))
        raise ValueError(f"offsets must be non-decreasing, got offsets[{bad}]={off[bad]} > offsets[{bad + 1}]="
                         f"{off[bad + 1]}")
    return off, arr


def check_positive_int(name: str, value) -> int:
    """``value`` as an int, raising ``ValueError`` naming ``name`` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class SessionBaseline(abc.ABC):
    """Base class: validates sessions and prefixes, keeps the training item counts.

    Subclasses set ``name`` and implement ``_fit(offsets, items, session_times)`` (checked arrays)
    and ``_score(prefixes)`` (checked int64 arrays) -> float ``[len(prefixes), num_items]``.
    """

    name: ClassVar[str] = "session_baseline"

    num_items: int
    item_counts_: np.ndarray  # float64 [num_items]: training events per catalog row

    def fit(self, offsets: np.ndarray, items: np.ndarray, num_items: int,
            session_times: np.ndarray | None = None) -> "SessionBaseline":
        num_items = check_num_items(num_items)
        offsets, items = check_sessions(offsets, items, num_items)
        if items.size == 0:
            raise ValueError("items is empty: no training events")
        num_sessions = offsets.size - 1
        if session_times is None:
            times = np.arange(num_sessions, dtype=np.float64)
        else:
            times = np.asarray(session_times)
            if times.shape != (num_sessions,) or not np.issubdtype(times.dtype, np.number):
                raise ValueError(f"session_times must be numeric of shape ({num_sessions},), got shape {times.shape} "
                                 f"dtype {times.dtype}")
            if not np.all(np.isfinite(times)):
                raise ValueError("session_times must be finite")
        self.num_items = num_items
        self.item_counts_ = np.bincount(items, minlength=num_items).astype(np.float64)
        self._fit(offsets, items, times)
        return self

    def score(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "item_counts_"):
            raise RuntimeError(f"{type(self).__name__}.score called before fit")
        checked = [_as_rows(p, self.num_items, f"prefixes[{q}]") for q, p in enumerate(prefixes)]
        scores = np.asarray(self._score(checked), dtype=np.float32)
        assert scores.shape == (len(checked), self.num_items), scores.shape
        return scores

    def popularity_row(self) -> np.ndarray:
        """float64 ``[num_items]``: ``FALLBACK_SCALE * item_counts_ / max(item_counts_)``, the
        retrieval baselines' "no evidence" ranking."""
        return FALLBACK_SCALE * self.item_counts_ / self.item_counts_.max()

    @abc.abstractmethod
    def _fit(self, offsets: np.ndarray, items: np.ndarray, times: np.ndarray) -> None:
        """Learns from the checked sessions; ``times`` float ``[S]`` (larger = more recent)."""

    @abc.abstractmethod
    def _score(self, prefixes: list[np.ndarray]) -> np.ndarray:
        """Scores ``[len(prefixes), num_items]`` of the checked prefixes."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_") and k != "num_items")
        return f"{type(self).__name__}({params})"


class SessionPopularity(SessionBaseline):
    """score[q, i] = number of training events of item i (float32, the same row for every query)."""

    name = "session_pop"

    def __init__(self) -> None:
        pass

    def _fit(self, offsets: np.ndarray, items: np.ndarray, times: np.ndarray) -> None:
        self.item_scores_ = self.item_counts_.astype(np.float32)

    def _score(self, prefixes: list[np.ndarray]) -> np.ndarray:
        return np.tile(self.item_scores_, (len(prefixes), 1))


class SessionKNN(SessionBaseline):
    """Session-kNN (SKNN; V-SKNN with ``weighting="linear"``); the module docstring has the formulas.

    Fitted state: ``sessions_`` binary float32 CSR ``[S', num_items]`` of the non-empty training
    sessions, newest first; ``session_items_`` (its transpose, CSR ``[num_items, S']``) and
    ``session_sizes_`` float64 ``[S']`` (distinct items per session, ``|b|``).
    """

    name = "sknn"

    def __init__(self, k: int = 100, sample_size: int = 500, weighting: str = "none") -> None:
        self.k = check_positive_int("k", k)
        self.sample_size = check_positive_int("sample_size", sample_size)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting

    def _fit(self, offsets: np.ndarray, items: np.ndarray, times: np.ndarray) -> None:
        lengths = np.diff(offsets)
        nonempty = np.flatnonzero(lengths > 0)
        # one row per non-empty session, in session order (pd.factorize keeps first appearance)
        x = interaction_matrix(items, self.num_items, users=np.repeat(np.arange(lengths.size), lengths))
        newest_first = np.argsort(times[nonempty], kind="stable")[::-1]  # equal times: later-given first
        self.sessions_ = x[newest_first].tocsr()
        self.session_items_ = self.sessions_.T.tocsr()
        self.session_sizes_ = np.diff(self.sessions_.indptr).astype(np.float64)

    def _query_matrix(self, prefixes: list[np.ndarray]) -> sp.csr_matrix:
        """float64 CSR ``[len(prefixes), num_items]``: each prefix's known items with their weight
        (1, or ``LINEAR_STEPS`` x the V-SKNN linear weight of the item's latest position among the
        known items)."""
        lengths = np.fromiter((p.size for p in prefixes), dtype=np.int64, count=len(prefixes))
        cols = np.concatenate(prefixes) if prefixes else np.zeros(0, dtype=np.int64)
        rows = np.repeat(np.arange(len(prefixes)), lengths)
        known = self.item_counts_[cols] > 0
        rows, cols = rows[known], cols[known]
        if self.weighting == "linear":
            known_lengths = np.bincount(rows, minlength=len(prefixes))
            starts = np.concatenate([[0], np.cumsum(known_lengths)[:-1]])
            steps_back = (known_lengths[rows] - 1) - (np.arange(rows.size) - starts[rows])
            weights = (LINEAR_STEPS - steps_back).astype(np.float64)
            live = weights > 0
            rows, cols, weights = rows[live], cols[live], weights[live]
            # a repeated item keeps its latest (largest) weight: the last entry per (row, col) after the sort
            order = np.lexsort((weights, cols, rows))
            rows, cols, weights = rows[order], cols[order], weights[order]
            last = np.r_[(rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1]), True]
            rows, cols, weights = rows[last], cols[last], weights[last]
        else:
            weights = np.ones(rows.size)
        q = sp.csr_matrix((weights, (rows, cols)), shape=(len(prefixes), self.num_items))
        q.sum_duplicates()
        if self.weighting == "none":
            q.data[:] = 1.0  # binary: a repeated item counts once
        return q

    def _neighbours(self, q: sp.csr_matrix) -> sp.csr_matrix:
        """float64 CSR ``[batch, S']``: the kept neighbours' similarities for query matrix ``q``."""
        inter = (q @ self.session_items_).tocsr()  # [batch, S'] weighted intersections
        inter.sort_indices()  # column order = recency order (newest first)
        counts = np.diff(inter.indptr)
        rows = np.repeat(np.arange(q.shape[0]), counts)
        position = np.arange(inter.nnz) - inter.indptr[rows]
        sample = position < self.sample_size
        rows, position, cols = rows[sample], position[sample], inter.indices[sample]
        query_sizes = np.diff(q.indptr).astype(np.float64)  # |a|: distinct live items
        scale = LINEAR_STEPS if self.weighting == "linear" else 1
        sims = inter.data[sample] / (scale * np.sqrt(query_sizes[rows] * self.session_sizes_[cols]))
        width = int(min(self.sample_size, counts.max(initial=0)))
        if width > self.k:
            padded = np.zeros((q.shape[0], width))
            padded_cols = np.zeros((q.shape[0], width), dtype=np.int64)
            padded[rows, position] = sims
            padded_cols[rows, position] = cols
            top = np.argsort(-padded, axis=1, kind="stable")[:, :self.k]  # stable: equal sims keep newest first
            sims = np.take_along_axis(padded, top, axis=1).ravel()
            cols = np.take_along_axis(padded_cols, top, axis=1).ravel()
            rows = np.repeat(np.arange(q.shape[0]), self.k)
            live = sims > 0
            rows, cols, sims = rows[live], cols[live], sims[live]
        return sp.csr_matrix((sims, (rows, cols)), shape=(q.shape[0], self.sessions_.shape[0]))

    def _score(self, prefixes: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(prefixes), self.num_items), dtype=np.float32)
        for start in range(0, len(prefixes), SCORE_CHUNK):
            chunk = prefixes[start:start + SCORE_CHUNK]
            weights = self._neighbours(self._query_matrix(chunk))
            out[start:start + len(chunk)] = (weights @ self.sessions_).toarray()
        empty = ~out.any(axis=1)
        out[empty] = self.popularity_row()
        return out
