"""Retrieval evaluation over the whole catalog, for a trained model and for any baseline.

Two views, both reported:

- per interaction (the TFRS tutorials' number): top-K categorical accuracy, the share of
  held-out events whose item is in the event query's top K. ``top_K_accuracy`` excludes
  nothing, exactly as ``tfrs.metrics.FactorizedTopK`` computes it (a model that spends its top
  slots on the user's training items loses); ``top_K_accuracy_excl`` removes the items the user
  met in ``known`` first, which is what a served list does;
- per user: Recall@K, HitRate@K, nDCG@K and MRR@K of one ranked list per user against the set
  of items that user met in the held-out split, plus ``mrr`` over the full ranking; with
  ``exclude_seen`` the items the user met before are removed from the list and from the
  relevant set (re-recommending them is trivial).

A held-out query knows only what was known before the split: the user's features, the
timestamp of the event (or of the user's first held-out event), and the user's last H items
in ``known`` (the earlier splits).

Every model is scored through the same two functions of (start, stop) -> [b, N] scores, so
the towers, popularity, item-kNN and EASE^R are measured by one piece of code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from tfrs_app.features.examples import candidate_features, query_features, user_histories


@dataclass(frozen=True)
class EvalSet:
    """Held-out events turned into queries and answers, indexed against ``catalog`` rows.

    user_queries: per-user query inputs [U]; relevant[u] / seen[u]: catalog row indices
    (seen[u] is excluded from user u's list: known[u] with ``exclude_seen``, else empty);
    known[u]: every catalog row user u met in ``known`` (a baseline's input, and what
    ``top_K_accuracy_excl`` removes). event_queries: per-event query inputs [E];
    event_items: catalog row of each event [E]; event_users: the event's user index in [0, U).
    """

    user_queries: dict
    relevant: list
    seen: list
    known: list
    event_queries: dict
    event_items: np.ndarray
    event_users: np.ndarray


def build_eval_set(known: pd.DataFrame, target: pd.DataFrame, catalog: pd.DataFrame, history_length: int,
                   exclude_seen: bool = True) -> EvalSet:
    row_of = pd.Series(np.arange(len(catalog)), index=catalog["item_id"].to_numpy())
    target = target[target["item_id"].isin(row_of.index)]
    firsts = target.drop_duplicates("user_id").reset_index(drop=True)  # target is time-sorted
    users = firsts["user_id"].to_numpy(dtype=object)
    history = user_histories(known, users, history_length)
    user_queries = query_features(firsts, history)

    target_rows = target.groupby("user_id", sort=False)["item_id"].apply(lambda s: set(row_of[s].tolist()))
    known_rows = known[known["item_id"].isin(row_of.index)].groupby("user_id")["item_id"].apply(
        lambda s: set(row_of[s].tolist()))
    relevant, seen, known_list = [], [], []
    for user in users:
        met = known_rows.get(user, set())
        before = met if exclude_seen else set()
        known_list.append(np.fromiter(met, dtype=np.int64, count=len(met)))
        seen.append(np.fromiter(before, dtype=np.int64, count=len(before)))
        relevant.append(target_rows[user] - before)

    position = pd.Series(np.arange(len(users)), index=users)
    event_users = position[target["user_id"]].to_numpy()
    event_queries = query_features(target, history[event_users])
    return EvalSet(user_queries, relevant, seen, known_list, event_queries, row_of[target["item_id"]].to_numpy(),
                   event_users)


def top_k(scores_fn, num_queries: int, k: int, exclude: Optional[Sequence[np.ndarray]] = None,
          batch_size: int = 1024) -> np.ndarray:
    """Top-k catalog rows per query, [Q, k]. ``scores_fn(start, stop)`` gives scores [b, N];
    rows listed in ``exclude[q]`` are never returned."""
    out = []
    for start in range(0, num_queries, batch_size):
        stop = min(start + batch_size, num_queries)
        scores = np.array(scores_fn(start, stop), dtype=np.float32, copy=True)
        if exclude is not None:
            for i, rows in enumerate(exclude[start:stop]):
                scores[i, rows] = -np.inf
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(out)


def ranking_metrics(ranked: np.ndarray, relevant: Sequence[set], ks: Sequence[int]) -> dict[str, float]:
    """Recall@k, HitRate@k, nDCG@k (binary gains) and MRR@k, averaged over queries with a
    non-empty relevant set (with one relevant item per query, recall@k is hit_rate@k).

    ranked: [Q, >= max(ks)] item indices, best first.
    """
    keep = [i for i, rel in enumerate(relevant) if rel]
    if not keep:
        raise ValueError("ranking_metrics: no query has a relevant item")
    discounts = 1.0 / np.log2(np.arange(2, ranked.shape[1] + 2))
    hits = np.array([[item in relevant[i] for item in ranked[i]] for i in keep], dtype=np.float64)
    sizes = np.array([len(relevant[i]) for i in keep], dtype=np.float64)
    metrics = {}
    for k in ks:
        h = hits[:, :k]
        ideal = np.array([discounts[: int(min(s, k))].sum() for s in sizes])
        first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, np.inf)
        metrics[f"recall@{k}"] = float(np.mean(h.sum(axis=1) / sizes))
        metrics[f"hit_rate@{k}"] = float(np.mean(h.any(axis=1)))
        metrics[f"ndcg@{k}"] = float(np.mean((h * discounts[:k]).sum(axis=1) / ideal))
        metrics[f"mrr@{k}"] = float(np.mean(1.0 / first))
    metrics["num_queries"] = len(keep)
    return metrics


def full_rank_mrr(scores_fn, relevant: Sequence[set], exclude: Sequence[np.ndarray], batch_size: int = 1024) -> float:
    """Mean of 1 / (rank of the best-scored relevant item) over the whole catalog, excluded rows
    removed; queries without a relevant item are skipped (as in ``ranking_metrics``). Rank is
    1 + the rows scoring strictly higher + half the other rows scoring the same (the expected
    rank under a random tie-break, so a baseline whose scores are mostly 0 gains nothing from
    its ties)."""
    reciprocal = []
    for start in range(0, len(relevant), batch_size):
        stop = min(start + batch_size, len(relevant))
        scores = np.array(scores_fn(start, stop), dtype=np.float32, copy=True)
        for i in range(stop - start):
            rows = np.fromiter(relevant[start + i], dtype=np.int64)
            if not rows.size:
                continue
            scores[i, exclude[start + i]] = -np.inf
            best = scores[i, rows].max()
            above = np.count_nonzero(scores[i] > best)
            ties = np.count_nonzero(scores[i] == best) - 1
            reciprocal.append(1.0 / (1 + above + 0.5 * ties))
    return float(np.mean(reciprocal))


def _expected_hits(above: np.ndarray, tied: np.ndarray, k: int) -> np.ndarray:
    """P(item in the top k) when ``above`` rows score higher and ``tied`` rows (itself included)
    score the same, ties broken at random: the free slots k - above shared among the tied rows."""
    return np.clip((k - above) / np.maximum(tied, 1), 0.0, 1.0)


def event_accuracy(scores_fn, eval_set: EvalSet, ks: Sequence[int], batch_size: int = 2048) -> dict[str, float]:
    """``top_K_accuracy`` (nothing excluded, as FactorizedTopK) and ``top_K_accuracy_excl`` (the
    user's known items removed first) over held-out events. ``scores_fn(start, stop)`` gives the
    event queries' scores [b, N]. An event counts as the probability that its item is in the top
    K under a random tie-break: 1 when fewer than K rows score at least as high, 0 when K or
    more score strictly higher, else the share of the remaining slots among the tied rows (with
    distinct scores, as a trained model's, this is FactorizedTopK's count exactly)."""
    hits = {k: 0.0 for k in ks}
    hits_excl = {k: 0.0 for k in ks}
    n = len(eval_set.event_items)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        scores = np.array(scores_fn(start, stop), dtype=np.float32, copy=True)
        rows = eval_set.event_items[start:stop]
        target = scores[np.arange(stop - start), rows][:, None]
        above, tied = np.count_nonzero(scores > target, axis=1), np.count_nonzero(scores == target, axis=1)
        for i, user in enumerate(eval_set.event_users[start:stop]):
            scores[i, eval_set.known[user]] = -np.inf
        target_excl = scores[np.arange(stop - start), rows][:, None]
        removed = np.isneginf(target_excl[:, 0])  # the item is among the known ones: never served
        above_excl = np.count_nonzero(scores > target_excl, axis=1)
        tied_excl = np.count_nonzero(scores == target_excl, axis=1)
        for k in ks:
            hits[k] += float(_expected_hits(above, tied, k).sum())
            hits_excl[k] += float(np.where(removed, 0.0, _expected_hits(above_excl, tied_excl, k)).sum())
    out = {}
    for k in ks:
        out[f"top_{k}_accuracy"] = hits[k] / n
        out[f"top_{k}_accuracy_excl"] = hits_excl[k] / n
    return out


def evaluate_scores(user_scores, event_scores, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """Every metric of one model from its two score functions (start, stop) -> [b, N]: per-user
    lists (``user_scores`` over ``eval_set.user_queries``) and per-event queries (``event_scores``)."""
    num_users = len(eval_set.relevant)
    ranked = top_k(user_scores, num_users, max(ks), eval_set.seen)
    metrics = ranking_metrics(ranked, eval_set.relevant, ks)
    metrics["mrr"] = full_rank_mrr(user_scores, eval_set.relevant, eval_set.seen)
    metrics.update(event_accuracy(event_scores, eval_set, ks))
    return metrics


def evaluate_model(model, catalog: pd.DataFrame, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """All metrics of a trained two-tower model (scores are query . candidate dot products)."""
    from tfrs_app.retrieval.model import embed

    items = embed(model.candidate_tower, candidate_features(catalog))
    users = embed(model.query_tower, eval_set.user_queries)
    events = embed(model.query_tower, eval_set.event_queries)
    return evaluate_scores(lambda a, b: users[a:b] @ items.T, lambda a, b: events[a:b] @ items.T, eval_set, ks)


def evaluate_baseline(baseline, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """All metrics of a fitted baseline (``tfrs_app.retrieval.baselines``), which scores a user
    from the set of items met in ``known``; an event is scored as its user."""
    users = np.concatenate([baseline.score(eval_set.known[a:a + 1024]) for a in range(0, len(eval_set.known), 1024)])
    return evaluate_scores(lambda a, b: users[a:b], lambda a, b: users[eval_set.event_users[a:b]], eval_set, ks)
