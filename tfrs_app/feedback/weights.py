"""Delayed-feedback methods: a training split -> engagement labels and ``weight_engagement``.

Each method gives every training impression a label y in [0, 1] and a weight w >= 0 for the
engagement head (the log's own ``weight_engagement``, if any, multiplies in). Where a method
gives one impression both a positive copy (weight w+) and a negative copy (w-), as ES-DFM's
re-ingested conversion or pre_conversion's flip mass do, the two are folded into one row,
y = w+ / (w+ + w-) and w = w+ + w-: binary cross-entropy then gives exactly the loss and gradient
of the two copies, without duplicating rows (which would also enter users' histories).

The observed label is "converted by the cut-off" and the elapsed time a = cut-off - impression
time. S(e | x) is the survival of ``hazard.ConversionHazard`` (not converted by e, given x).

- ``naive``: y = observed, w = 1 (what a retrain that ignores the delay does);
- ``waiting_window``: as naive, but impressions younger than ``window_days`` get w = 0;
- ``fsiw`` (Yasui et al., WWW 2020, their eq. for p(y)/p(y_obs)): observed positives weigh
  1 / P(converted by a | converts, x) = (1 - S(inf)) / (1 - S(a)), observed negatives
  P(real negative | not converted by a, x) = S(inf) / S(a). The paper fits the two probabilities
  as two classifiers on an older, mature period; we read both off one hazard model fitted with
  censoring on the whole window (the same probabilities; see hazard.py);
- ``es_dfm`` (Yang et al., AAAI 2021): elapsed-time sampling with window c = ``window_days``:
  an impression enters after c with label "converted within c", and a later conversion re-enters
  as a positive; impressions younger than c have not entered yet (w = 0). The weights are p / q
  of this observed stream. The paper's eq. 9-10 assume every delayed conversion has re-entered:
  positives weigh 1 + p_dp(x), negatives (1 + p_dp(x)) p_rn(x), with p_dp = S(c) - S(inf) and
  p_rn = S(inf) / S(c); that is ``es_dfm_stream``. At a batch cut-off only the conversions before
  it have re-entered, so for an impression of age a, q has Z = 1 + S(c) - S(a), and
  w+ = (1 - S(inf)) Z / (1 - S(a)), w- = S(inf) Z / S(c) (``es_dfm``; equal to eq. 9-10 as a -> inf);
- ``pre_conversion`` (the design we follow: importance weights p(x, y) / q(x, y) from
  pre-conversion engagement): the flip probability of an observed negative,
  f = 1 - S(inf | x, pre) / S(a | x, pre), from a hazard model that also sees the ``pre_*``
  signals; the negative keeps weight 1 - f as a negative and f moves to its positive copy
  (folded: y = f, w = 1); observed positives keep y = 1, w = 1;
- ``oracle``: the eventual labels (conversions after the cut-off, known only in hindsight);
  a benchmark bound, never a deployable method.

Weights are clipped to [0, ``max_weight``] (FSIW's 1 / P(observed) explodes for the youngest
positives).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tfrs_app.config import FeedbackConfig
from tfrs_app.data.schema import SchemaError, pre_signal_columns, user_feature_columns
from tfrs_app.data.splits import Splits
from tfrs_app.feedback.hazard import ConversionHazard, bin_edges

log = logging.getLogger(__name__)
DAY = 86_400.0
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclass(frozen=True)
class Weighted:
    """labels / weights: [N] engagement label in [0, 1] and weight >= 0 for the training rows."""

    labels: np.ndarray
    weights: np.ndarray
    summary: dict


def resolve_cutoff(cfg: FeedbackConfig, splits: Splits) -> int:
    """The cut-off in Unix seconds: ``cfg.cutoff`` or the last training impression; it must lie
    between the last training impression and the end of the log."""
    train = splits.train
    last_train = int(train["timestamp"].max())
    cutoff = cfg.cutoff_seconds()
    if cutoff is None:
        return last_train
    frames = [f for f in (splits.train, splits.val, splits.test) if len(f)]
    end = max(int(f["timestamp"].max()) for f in frames)
    if "conversion_timestamp" in train.columns:
        end = max(end, *(int(np.nanmax(np.r_[f["conversion_timestamp"].to_numpy(), -np.inf])) for f in frames))
    if cutoff < last_train:
        row = int(np.flatnonzero(train["timestamp"].to_numpy() > cutoff)[0])
        raise SchemaError(f"feedback.cutoff: {cutoff} is before training impressions (column 'timestamp', first at "
                          f"training row {row}: {int(train['timestamp'].iloc[row])}); the cut-off must be at or after "
                          f"the last training impression ({last_train}) and at most the log's end ({end})")
    if cutoff > end:
        raise SchemaError(f"feedback.cutoff: {cutoff} is after the log's last timestamp or conversion ({end}); "
                          f"choose a time in [{last_train}, {end}]")
    return cutoff


def apply_feedback(train: pd.DataFrame, cfg: FeedbackConfig, cutoff: int) -> Weighted:
    """The engagement labels and weights of ``train`` under ``cfg.method`` at ``cutoff``."""
    if "conversion_timestamp" not in train.columns:
        if cfg.method != "naive":
            raise SchemaError(f"feedback.method={cfg.method!r} needs a 'conversion_timestamp' column in the log "
                              "(when each engagement label became 1; empty if not yet)")
        labels = _column(train, "engagement", 1.0)
        return Weighted(labels, _column(train, "weight_engagement", 1.0), {"method": "naive", "applied": False})
    _check_signals(train, cutoff)
    times = train["timestamp"].to_numpy(np.float64)
    conversion = train["conversion_timestamp"].to_numpy(np.float64)
    age = (cutoff - times) / DAY
    observed = conversion <= cutoff  # NaN compares False
    delay = np.where(observed, (conversion - times) / DAY, np.inf)
    eventual = ~np.isnan(conversion)
    method = cfg.method
    hazard: Optional[ConversionHazard] = None
    extra: dict = {}

    if method in ("naive", "waiting_window", "oracle"):
        y = (eventual if method == "oracle" else observed).astype(np.float64)
        w = np.ones(len(train)) if method != "waiting_window" else (age >= cfg.window_days).astype(np.float64)
    else:
        x = _id_features(train)
        signals = None
        if method == "pre_conversion":
            names = pre_signal_columns(train)
            if not names:
                raise SchemaError("feedback.method='pre_conversion' needs pre-conversion signal columns pre_<name> "
                                  "(0/1 or counts recorded before the cut-off, e.g. pre_click)")
            signals = train[list(names)].to_numpy(np.float64)
            extra["signals"] = list(names)
        hazard = ConversionHazard(bin_edges(float(age.max()), (cfg.window_days,))).fit(x, signals, age, delay)
        if method in ("es_dfm", "es_dfm_stream"):
            y, w, extra_es = _es_dfm(hazard, x, age, delay, observed, cfg.window_days, stream=method == "es_dfm_stream")
            extra.update(extra_es)
        else:
            s_age, s_end = hazard.survival(x, signals, age)
            flip = np.clip(1 - s_end / np.maximum(s_age, 1e-12), 0, 1)
            if method == "fsiw":
                seen = np.clip((1 - s_age) / np.maximum(1 - s_end, 1e-12), 1e-12, 1)
                w = np.where(observed, 1 / seen, 1 - flip)
                y = observed.astype(np.float64)
            else:  # pre_conversion
                w = np.ones(len(train))
                y = np.where(observed, 1.0, flip)
                extra["weight_as_negative"] = _quantiles(1 - flip[~observed])
            extra["flip_probability_of_negatives"] = _quantiles(flip[~observed])
    clipped = int((w > cfg.max_weight).sum())
    w = np.clip(w, 0, cfg.max_weight) * _column(train, "weight_engagement", 1.0)
    summary = {
        "method": method, "applied": True, "cutoff": int(cutoff), "rows": int(len(train)),
        "observed_positive_rate": float(observed.mean()),
        "pending_at_cutoff": float((eventual & ~observed).sum() / max(1, eventual.sum())),
        "trained_positive_rate": float((w * y).sum() / max(w.sum(), 1e-12)),
        "weight": {"mean": float(w.mean()), "zero_share": float((w == 0).mean()), "clipped": clipped,
                   "quantiles": _quantiles(w)},
        **extra,
    }
    if hazard is not None:
        summary["hazard"] = {"bins_days": [float(e) for e in hazard.edges], "rows": hazard.fit_rows,
                             "seconds": round(hazard.fit_seconds, 2)}
    log.info("feedback %s at cut-off %d: observed positive rate %.4f, trained positive rate %.4f, pending %.1f%%",
             method, cutoff, summary["observed_positive_rate"], summary["trained_positive_rate"],
             100 * summary["pending_at_cutoff"])
    return Weighted(y.astype(np.float32), w.astype(np.float32), summary)


def _es_dfm(hazard: ConversionHazard, x: sp.csr_matrix, age: np.ndarray, delay: np.ndarray, observed: np.ndarray,
            window: float, stream: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """ES-DFM's labels and weights (module docstring): window labels, re-entered conversions, p / q."""
    n = len(age)
    s_window, s_end = hazard.survival(x, None, np.full(n, window))
    s_age, _ = hazard.survival(x, None, np.maximum(age, window))
    entered = age >= window
    in_window = delay <= window
    positive = observed.astype(np.float64)  # converted inside the window, or later and re-entered by the cut-off
    negative = (~in_window).astype(np.float64)  # every impression unconverted at the window enters as a negative
    p_dp = np.clip(s_window - s_end, 0, 1)  # a delayed positive
    p_rn = np.clip(s_end / np.maximum(s_window, 1e-12), 0, 1)  # a negative at the window that stays one
    if stream:  # the paper's eq. 9-10: every delayed conversion has re-entered
        w_pos, w_neg = 1 + p_dp, (1 + p_dp) * p_rn
    else:  # at the cut-off: only conversions before it have re-entered (Z = 1 + P(c < d <= a))
        z = 1 + np.clip(s_window - s_age, 0, 1)
        w_pos = (1 - s_end) * z / np.maximum(1 - s_age, 1e-12)
        w_neg = s_end * z / np.maximum(s_window, 1e-12)
    pos, neg = positive * w_pos, negative * w_neg
    w = np.where(entered, pos + neg, 0.0)
    y = np.where(w > 0, pos / np.maximum(w, 1e-12), 0.0)
    extra = {"p_delayed_positive": _quantiles(p_dp), "p_real_negative": _quantiles(p_rn)}
    return y, w, extra


def _check_signals(train: pd.DataFrame, cutoff: int) -> None:
    """Pre-conversion signals must be known at the cut-off: a training row's signal recorded later is a leak."""
    for name in pre_signal_columns(train):
        stamp = f"{name}_timestamp"
        if stamp not in train.columns:
            continue
        late = np.flatnonzero((train[stamp].to_numpy(np.float64) > cutoff) & (train[name].to_numpy() > 0))
        if late.size:
            row = int(late[0])
            raise SchemaError(f"column {name!r}: recorded after the cut-off {cutoff} at training row {row} "
                              f"({stamp} = {int(train[stamp].iloc[row])}); pre-conversion signals must be as known "
                              "at the cut-off (zero those recorded later)")


def _id_features(frame: pd.DataFrame) -> sp.csr_matrix:
    """[N, F] one-hot user_id, item_id and categorical user features."""
    blocks = []
    for column in ("user_id", "item_id", *user_feature_columns(frame)):
        codes, uniques = pd.factorize(frame[column])
        blocks.append(sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)),
                                    shape=(len(codes), len(uniques))))
    return sp.hstack(blocks, format="csr")


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {}
    return {f"p{int(q * 100)}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))}


def _column(frame: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name in frame.columns:
        return frame[name].to_numpy(np.float64)
    return np.full(len(frame), default)
