"""Related-item metrics on held-out directed pairs (source -> target rows).

A scorer maps source rows [Q] to scores over the whole catalog [Q, N]. For each pair the rank of
its target among all items but the source itself (1 = best; ties count against the target,
so a constant scorer gets no hits while N - 1 > k; NaN scores rank last) gives HitRate@k and
MRR@k (reciprocal rank, 0 beyond k).

``asymmetry``: for one-way pairs A -> B (B -> A is neither held out nor a known edge), the share
where B ranks higher given A than A given B; a symmetric scorer sits near 0.5.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

Scorer = Callable[[np.ndarray], np.ndarray]  # source rows [Q] -> scores [Q, N]


def target_ranks(scorer: Scorer, sources: np.ndarray, targets: np.ndarray, chunk: int = 512) -> np.ndarray:
    """[P] rank (1-based) of each target given its source, over all items but the source."""
    sources, targets = np.asarray(sources, np.int64), np.asarray(targets, np.int64)
    ranks = np.zeros(len(sources), dtype=np.int64)
    unique, inverse = np.unique(sources, return_inverse=True)
    for start in range(0, len(unique), chunk):
        rows = unique[start:start + chunk]
        scores = np.asarray(scorer(rows), dtype=np.float64)
        scores[np.isnan(scores)] = -np.inf  # a NaN score ranks last, never first
        scores[np.arange(len(rows)), rows] = -np.inf  # never the input itself
        members = np.flatnonzero((inverse >= start) & (inverse < start + len(rows)))
        local = inverse[members] - start
        own = scores[local, targets[members]]
        ranks[members] = np.maximum((scores[local] >= own[:, None]).sum(axis=1), 1)  # ties count against the target
    return ranks


def rank_metrics(ranks: np.ndarray, k: int) -> dict:
    ranks = np.asarray(ranks)
    if len(ranks) == 0:
        return {f"hit_rate@{k}": float("nan"), f"mrr@{k}": float("nan"), "pairs": 0}
    hit = ranks <= k
    return {f"hit_rate@{k}": float(hit.mean()), f"mrr@{k}": float(np.where(hit, 1.0 / ranks, 0.0).mean()),
            "pairs": int(len(ranks))}


def one_way_pairs(pairs: pd.DataFrame, known_src: np.ndarray, known_dst: np.ndarray, n: int) -> pd.DataFrame:
    """The distinct held-out pairs whose reverse is neither held out nor a known directed edge."""
    distinct = pairs[["source", "target"]].drop_duplicates()
    codes = distinct["source"].to_numpy(np.int64) * n + distinct["target"].to_numpy(np.int64)
    reverse = distinct["target"].to_numpy(np.int64) * n + distinct["source"].to_numpy(np.int64)
    taken = np.concatenate([codes, np.asarray(known_src, np.int64) * n + np.asarray(known_dst, np.int64)])
    return distinct[~np.isin(reverse, taken)].reset_index(drop=True)


def asymmetry(scorer: Scorer, pairs: pd.DataFrame) -> dict:
    """Share of one-way pairs A -> B where rank(B | A) < rank(A | B) (ties count half)."""
    if len(pairs) == 0:
        return {"forward_wins": float("nan"), "pairs": 0}
    forward = target_ranks(scorer, pairs["source"].to_numpy(), pairs["target"].to_numpy())
    backward = target_ranks(scorer, pairs["target"].to_numpy(), pairs["source"].to_numpy())
    wins = (forward < backward) + 0.5 * (forward == backward)
    return {"forward_wins": float(wins.mean()), "pairs": int(len(pairs)),
            "median_rank_forward": float(np.median(forward)), "median_rank_backward": float(np.median(backward))}


def evaluate_scorer(scorer: Scorer, pairs: pd.DataFrame, one_way: pd.DataFrame, k: int,
                    cold_rows: np.ndarray | None = None) -> dict:
    """HitRate@k / MRR@k on ``pairs``, the asymmetry check on ``one_way``, and, given
    ``cold_rows``, the metrics on the pairs whose target is a cold item."""
    ranks = target_ranks(scorer, pairs["source"].to_numpy(), pairs["target"].to_numpy())
    result = {**rank_metrics(ranks, k), "asymmetry": asymmetry(scorer, one_way)}
    if cold_rows is not None:
        cold = np.isin(pairs["target"].to_numpy(), cold_rows)
        result["cold_targets"] = rank_metrics(ranks[cold], k)
    return result
