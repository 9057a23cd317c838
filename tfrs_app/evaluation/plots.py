"""Diagnostic plots of a head's scores and threshold policies, written as PNG files.

Figures are built with ``matplotlib.figure.Figure`` on the Agg canvas directly, never through
pyplot: rendering needs no display, holds no global figure state, and importing this module
does not switch the backend of a notebook that imports tfrs_app. Each PNG is written under a
temporary name beside its destination and renamed into place, so a reader never sees half a
file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from tfrs_app.evaluation.metrics import ECE_BINS, reliability_curve


def _figure(width: float = 6.4, height: float = 4.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | os.PathLike) -> Path:
    """Renders ``fig`` to ``path`` atomically (temporary file, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plot_positive_rate_by_bucket(score: np.ndarray, std_bucket: np.ndarray, label: np.ndarray,
                                 path: str | os.PathLike, num_bins: int = 10,
                                 thresholds: Optional[Sequence[float]] = None) -> Path:
    """Observed positive rate against score, one line per uncertainty bucket.

    score, std_bucket, label: [N]. Within each bucket the scores are cut into ``num_bins``
    quantile bins (equal counts), and each point is (mean score, positive rate) of a bin. Where
    the score is less reliable (high-std buckets) the line is flatter than the diagonal, which is
    why those buckets need a higher threshold. ``thresholds`` [B]: optional per-bucket score
    thresholds drawn as dashed vertical lines in the bucket's colour (+inf ones are skipped).
    """
    score = np.asarray(score, dtype=np.float64)
    bucket = np.asarray(std_bucket, dtype=np.int64)
    label = np.asarray(label, dtype=np.float64)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="calibrated")
    colours = [f"C{k % 10}" for k in range(int(bucket.max()) + 1 if bucket.size else 0)]
    for b in np.unique(bucket):
        rows = bucket == b
        s, y = score[rows], label[rows]
        order = np.argsort(s, kind="stable")
        parts = [p for p in np.array_split(order, min(num_bins, s.size)) if p.size]
        ax.plot([s[p].mean() for p in parts], [y[p].mean() for p in parts], marker="o", markersize=3,
                color=colours[b], label=f"bucket {b} (n={s.size})")
        if thresholds is not None and b < len(thresholds) and np.isfinite(thresholds[b]):
            ax.axvline(float(thresholds[b]), color=colours[b], linestyle="--", linewidth=1)
    ax.set_xlabel("score (MC-dropout mean)")
    ax.set_ylabel("positive rate")
    ax.set_title("positive rate by score, per uncertainty bucket (0 = lowest std)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    return save_png(fig, path)


def plot_reliability(prob: np.ndarray, label: np.ndarray, path: str | os.PathLike, bins: int = ECE_BINS) -> Path:
    """Reliability diagram (mean predicted vs observed rate per equal-width bin, with the
    diagonal) above a histogram of the bin counts (log scale)."""
    predicted, observed, count = reliability_curve(prob, label, bins)
    fig = _figure(6.4, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    top.plot(predicted, observed, marker="o", label="model")
    top.set_ylabel("observed positive rate")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.set_title("reliability")
    width = 1.0 / bins
    bottom.bar(np.minimum((predicted * bins).astype(int), bins - 1) * width + width / 2, count, width=width * 0.9)
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("examples")
    bottom.set_xlim(0, 1)
    return save_png(fig, path)


def plot_pr_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike,
                   targets: Sequence[float] = ()) -> Path:
    """Precision against recall per policy: curves = {policy: (precision [K], recall [K])};
    points with undefined precision (NaN) are dropped, the rest drawn in order of recall.
    Dotted horizontal lines mark the precision ``targets``."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for name, (precision, recall) in curves.items():
        precision = np.asarray(precision, dtype=np.float64)
        recall = np.asarray(recall, dtype=np.float64)
        ok = np.isfinite(precision) & np.isfinite(recall)
        order = np.argsort(recall[ok], kind="stable")
        ax.plot(recall[ok][order], precision[ok][order], marker="." if ok.sum() < 100 else None, label=name)
    for target in targets:
        ax.axhline(float(target), color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("test recall")
    ax.set_ylabel("test precision")
    ax.set_title("test precision / recall per policy")
    ax.legend(fontsize=8)
    return save_png(fig, path)
