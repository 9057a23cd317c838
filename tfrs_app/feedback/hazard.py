"""The auxiliary model of delayed feedback: a discrete-time hazard of conversion.

h_k(x) = P(converts in [e_k, e_k+1) | not converted by e_k, x), a logistic regression
(scikit-learn) on person-period rows: one row per training impression and per elapsed-time bin
that is fully observed before the cut-off and that the impression entered unconverted (label:
converted inside the bin). Impressions that never convert stay at risk in every bin, so
h already mixes "will not convert" with "has not yet": the survival

    S(e | x) = P(not converted by e | x) = prod_{k: e_k+1 <= e} (1 - h_k(x))

gives every probability the methods need (``weights.py``), e.g. the chance that a negative at
elapsed time e still flips, 1 - S(inf) / S(e). Fitted on every training impression with its
censoring, not only on an old "mature" period: that is what lets the training window be short
against the delays. Beyond the last bin (the oldest fully observed elapsed time) the hazard is
taken as 0; conversions later than that cannot be learned from the training window.

Design columns: bin one-hot | x | signals x bin one-hot, where x are the sparse features
(one-hot ids) and signals the optional pre-conversion signals, whose effect may change with the
elapsed time.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
import scipy.sparse as sp

DEFAULT_EDGES_DAYS = (0.0, 1 / 24, 0.25, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365)


def bin_edges(max_age_days: float, extra: tuple[float, ...] = ()) -> np.ndarray:
    """Elapsed-time bin edges in days, up to the oldest age that is fully observed (at least two bins)."""
    edges = np.unique(np.array([*DEFAULT_EDGES_DAYS, *extra], dtype=np.float64))
    kept = edges[edges <= max_age_days]
    if kept.size < 3:
        kept = np.unique(np.concatenate([kept, np.linspace(0, max_age_days, 3)]))
    return kept


class ConversionHazard:
    """x [N, F] sparse features, signals [N, S] (optional) -> per-bin conversion hazard [N, K]."""

    def __init__(self, edges_days: np.ndarray, regularization: float = 1.0):
        self.edges = np.asarray(edges_days, dtype=np.float64)
        self.regularization = float(regularization)
        self.fit_rows = 0
        self.fit_seconds = 0.0

    @property
    def num_bins(self) -> int:
        return self.edges.size - 1

    def fit(self, x: sp.csr_matrix, signals: Optional[np.ndarray], age_days: np.ndarray,
            delay_days: np.ndarray) -> "ConversionHazard":
        """age_days [N]: cut-off minus impression time; delay_days [N]: conversion delay, inf where
        not converted by the cut-off."""
        from sklearn.linear_model import LogisticRegression

        started = time.perf_counter()
        lo, hi = self.edges[:-1][None, :], self.edges[1:][None, :]
        at_risk = (hi <= age_days[:, None]) & (delay_days[:, None] >= lo)
        rows, bins = np.nonzero(at_risk)
        label = (delay_days[rows] < self.edges[1:][bins]).astype(np.int64)
        if label.min() == label.max():
            raise ValueError("feedback: the hazard model needs both converted and unconverted bins in the training "
                             f"window ({len(label)} person-period rows, all {'converted' if label[0] else 'unconverted'})")
        self.signals = 0 if signals is None else signals.shape[1]
        design = self._design(x[rows], None if signals is None else signals[rows], bins)
        model = LogisticRegression(C=self.regularization, max_iter=500)
        model.fit(design, label)
        coef = model.coef_[0]
        k, f = self.num_bins, x.shape[1]
        self.intercept = float(model.intercept_[0])
        self.bin_coef = coef[:k]
        self.x_coef = coef[k:k + f]
        self.signal_coef = coef[k + f:].reshape(self.signals, k) if self.signals else np.zeros((0, k))
        self.fit_rows = int(len(label))
        self.fit_seconds = time.perf_counter() - started
        return self

    def _design(self, x: sp.csr_matrix, signals: Optional[np.ndarray], bins: np.ndarray) -> sp.csr_matrix:
        n, k = len(bins), self.num_bins
        one_hot = sp.csr_matrix((np.ones(n), (np.arange(n), bins)), shape=(n, k))
        parts = [one_hot, x]
        for j in range(self.signals):
            parts.append(sp.csr_matrix((signals[:, j], (np.arange(n), bins)), shape=(n, k)))
        return sp.hstack(parts, format="csr")

    def hazards(self, x: sp.csr_matrix, signals: Optional[np.ndarray] = None) -> np.ndarray:
        """[N, K] per-bin hazards."""
        logit = self.intercept + self.bin_coef[None, :] + np.asarray(x @ self.x_coef).reshape(-1, 1)
        if self.signals:
            logit = logit + signals @ self.signal_coef
        return 1.0 / (1.0 + np.exp(-logit))

    def survival(self, x: sp.csr_matrix, signals: Optional[np.ndarray], elapsed_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S(elapsed) [N], S(inf) [N]): not converted by the elapsed time / ever; geometric
        interpolation inside a bin."""
        log_keep = np.log1p(-np.clip(self.hazards(x, signals), 0, 1 - 1e-9))  # [N, K]
        cumulative = np.concatenate([np.zeros((log_keep.shape[0], 1)), np.cumsum(log_keep, axis=1)], axis=1)
        e = np.clip(np.asarray(elapsed_days, dtype=np.float64), 0, self.edges[-1])
        k = np.clip(np.searchsorted(self.edges, e, side="right") - 1, 0, self.num_bins - 1)
        fraction = np.clip((e - self.edges[k]) / (self.edges[k + 1] - self.edges[k]), 0, 1)
        rows = np.arange(len(e))
        log_s = cumulative[rows, k] + fraction * log_keep[rows, k]
        return np.exp(log_s), np.exp(cumulative[:, -1])
