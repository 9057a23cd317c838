"""Next-item evaluation shared by every sequence model (GRU4Rec, the two-tower model, the session
baselines): each model is a ``score_fn(list of item-row arrays) -> float [b, num_items]``.

Two protocols:

* ``next_item_cases`` + ``evaluate_next_item``: the GRU4Rec protocol. Every event after the
  first of every evaluation session is a case: the items before it are the prefix, it is the
  target. Recall@k and MRR@k over the whole catalog.

  - Ties are pessimistic: ``rank = 1 + #(other items scoring >= the target)``. The GRU4Rec code
    counts strictly greater items only, which gives a constant scorer rank 1 everywhere; counting
    ties against the target makes a constant (or collapsed) model score ~0 as it should. With
    distinct scores the two agree.
  - With ``exclude_seen`` the prefix's items are removed from the ranking (set to ``-inf``). A
    target that occurs in its own prefix (a repeat) can then never be recommended: it is counted
    as a miss, not dropped, so every model is measured on the same cases, and ``repeat_share``
    reports how many cases that is (the ceiling it puts on recall is ``1 - repeat_share``).
    ``repeat_share`` is reported with ``exclude_seen=False`` too, where repeats are ranked as
    any other target.

* ``evaluate_last_item``: leave-last-out on user sequences, one case per user, computed with the
  retrieval evaluator's own functions (``tfrs_app.retrieval.evaluate.top_k``,
  ``ranking_metrics`` and ``full_rank_mrr``) and the same exclusion as
  ``bench/retrieval_quality.py``'s ``leave_last_out`` protocol, so its numbers are comparable:
  the excluded items are removed from the list and from the relevant set, so a user whose target
  is excluded has nothing relevant left and is skipped (not counted in ``num_queries``);
  HitRate@k and nDCG@k are read off the top-k list (``top_k``'s order: score descending, ties in
  ``argpartition``'s order), MRR over the full ranking with the expected rank under a random
  tie-break (``1 + #higher + #tied / 2``).

Numpy only, no TensorFlow.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tfrs_app.retrieval.evaluate import full_rank_mrr, ranking_metrics, top_k
from tfrs_app.sequences.baselines import check_positive_int, check_sessions

ScoreFn = Callable[[list], np.ndarray]
#: users scored per ``score_fn`` call in ``evaluate_last_item`` (the retrieval evaluator's batch)
LAST_ITEM_BATCH = 1024


def next_item_cases(offsets: np.ndarray, items: np.ndarray,
                    max_prefix: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Every next-event case of the sessions ``items[offsets[s]:offsets[s + 1]]`` (oldest first).

    For session start ``a`` and every position ``t >= 1`` of it: prefix ``items[a:a + t]`` (its
    last ``max_prefix`` items when given), target ``items[a + t]``. Cases are in session order,
    then position order. Returns ``(prefixes, targets)``: a list of N int64 arrays (views of
    ``items``) and int64 ``[N]``; N = sum over sessions of (length - 1), a one-event session
    gives none.
    """
    offsets, items = check_sessions(offsets, items)
    if max_prefix is not None:
        max_prefix = check_positive_int("max_prefix", max_prefix)
    prefixes, targets = [], []
    for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        for end in range(a + 1, b):
            start = a if max_prefix is None else max(a, end - max_prefix)
            prefixes.append(items[start:end])
            targets.append(end)
    return prefixes, items[np.asarray(targets, dtype=np.int64)]


def _scores(score_fn: ScoreFn, batch: list, num_items: int | None) -> np.ndarray:
    """``score_fn(batch)`` as a writable float array ``[len(batch), num_items]``, checked."""
    scores = np.array(score_fn(batch), copy=True)
    if scores.ndim != 2 or scores.shape[0] != len(batch) or (num_items is not None and scores.shape[1] != num_items):
        raise ValueError(f"score_fn returned shape {scores.shape} for {len(batch)} queries"
                         + (f" over {num_items} items" if num_items is not None else ""))
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    if np.isnan(scores).any():
        raise ValueError("score_fn returned NaN scores")
    return scores


def _check_cases(prefixes: Sequence[np.ndarray], targets, what: str) -> np.ndarray:
    targets = np.asarray(targets)
    if targets.ndim != 1 or (targets.size and not np.issubdtype(targets.dtype, np.integer)):
        raise ValueError(f"targets must be a 1-D integer array, got shape {targets.shape} dtype {targets.dtype}")
    if len(prefixes) != targets.size:
        raise ValueError(f"{what} has {len(prefixes)} entries but targets has {targets.size}")
    if targets.size == 0:
        raise ValueError("targets is empty: nothing to evaluate")
    return targets.astype(np.int64, copy=False)


def _check_targets(targets: np.ndarray, num_items: int) -> None:
    if targets.min() < 0 or targets.max() >= num_items:
        bad = int(targets.min() if targets.min() < 0 else targets.max())
        raise ValueError(f"targets has catalog row {bad} outside [0, num_items={num_items})")


def evaluate_next_item(score_fn: ScoreFn, prefixes: Sequence[np.ndarray], targets: np.ndarray, k: int = 20,
                       exclude_seen: bool = True, batch_size: int = 1024) -> dict:
    """Recall@k and MRR@k of ``score_fn`` on next-item cases (``next_item_cases``).

    ``score_fn(prefixes[a:b])`` -> float ``[b - a, num_items]``; ``targets`` int ``[N]``.
    ``rank = 1 + #(items other than the target scoring >= it)``, a repeat target with
    ``exclude_seen`` is a miss (module docstring). Returns ``{"recall@k": share of cases with
    rank <= k, "mrr@k": mean of 1/rank (0 beyond k), "num_cases": N, "repeat_share": share of
    cases whose target occurs in its prefix}``.
    """
    targets = _check_cases(prefixes, targets, "prefixes")
    k = check_positive_int("k", k)
    batch_size = check_positive_int("batch_size", batch_size)
    num_items = None
    ranks, repeats = np.empty(targets.size), np.empty(targets.size, dtype=bool)
    for start in range(0, targets.size, batch_size):
        batch = list(prefixes[start:start + batch_size])
        scores = _scores(score_fn, batch, num_items)
        num_items = scores.shape[1]
        target = targets[start:start + len(batch)]
        _check_targets(target, num_items)
        lengths = np.fromiter((len(p) for p in batch), dtype=np.int64, count=len(batch))
        rows = np.repeat(np.arange(len(batch)), lengths)
        cols = np.concatenate([np.asarray(p, dtype=np.int64) for p in batch]) if batch else np.zeros(0, np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= num_items):
            raise ValueError(f"prefixes[{start + int(rows[np.argmax((cols < 0) | (cols >= num_items))])}] has a "
                             f"catalog row outside [0, num_items={num_items})")
        repeat = np.bincount(rows, weights=cols == target[rows], minlength=len(batch)) > 0
        if exclude_seen:
            scores[rows, cols] = -np.inf
        own = scores[np.arange(len(batch)), target][:, None]
        rank = np.count_nonzero(scores >= own, axis=1).astype(np.float64)  # the target itself included: 1 + others
        if exclude_seen:
            rank[repeat] = np.inf
        rank[np.isneginf(own[:, 0])] = np.inf  # a target the model cannot score is a miss, however small the catalog
        ranks[start:start + len(batch)] = rank
        repeats[start:start + len(batch)] = repeat
    hit = ranks <= k
    return {f"recall@{k}": float(hit.mean()), f"mrr@{k}": float(np.where(hit, 1.0 / ranks, 0.0).mean()),
            "num_cases": int(targets.size), "repeat_share": float(repeats.mean())}


def evaluate_last_item(score_fn: ScoreFn, histories: Sequence[np.ndarray], targets: np.ndarray, k: int = 10,
                       exclude: list[np.ndarray] | None = None) -> dict:
    """Leave-last-out: user ``u``'s ``histories[u]`` (oldest first) predicts ``targets[u]``.

    ``score_fn(histories[a:b])`` -> float ``[b - a, num_items]``; ``exclude[u]`` (default
    ``histories[u]``, the seen items) is masked out. Computed as ``bench/retrieval_quality.py``'s
    ``leave_last_out`` protocol (module docstring: a user whose target is excluded is skipped).
    Returns ``{"hit_rate@k", "ndcg@k" (1 / log2(rank + 1) within the top k, else 0), "mrr" (full
    ranking, random tie-break), "num_queries"}`` (the users not skipped).
    """
    targets = _check_cases(histories, targets, "histories")
    k = check_positive_int("k", k)
    if exclude is None:
        exclude = histories
    elif len(exclude) != targets.size:
        raise ValueError(f"exclude has {len(exclude)} entries but targets has {targets.size}")
    exclude = [np.asarray(e, dtype=np.int64) for e in exclude]
    relevant = [set() if t in set(e.tolist()) else {int(t)} for t, e in zip(targets.tolist(), exclude)]
    ranked, reciprocal_sums, num_items = [], 0.0, None
    for start in range(0, targets.size, LAST_ITEM_BATCH):
        stop = min(start + LAST_ITEM_BATCH, targets.size)
        scores = _scores(score_fn, list(histories[start:stop]), num_items)
        num_items = scores.shape[1]
        _check_targets(targets[start:stop], num_items)
        ranked.append(top_k(lambda a, b: scores[a:b], stop - start, k, exclude[start:stop], batch_size=stop - start))
        kept = sum(1 for rel in relevant[start:stop] if rel)
        if kept:
            mrr = full_rank_mrr(lambda a, b: scores[a:b], relevant[start:stop], exclude[start:stop],
                                batch_size=stop - start)
            reciprocal_sums += mrr * kept
    metrics = ranking_metrics(np.concatenate(ranked), relevant, [k])
    return {f"hit_rate@{k}": metrics[f"hit_rate@{k}"], f"ndcg@{k}": metrics[f"ndcg@{k}"],
            "mrr": reciprocal_sums / metrics["num_queries"], "num_queries": metrics["num_queries"]}
