"""Retrieval evaluation over the whole catalog, for the model and the popularity baseline.

Two views, both reported:

- per interaction (the TFRS tutorials' number): ``tfrs.metrics.FactorizedTopK`` top-K
  categorical accuracy, the share of held-out events whose item is in the query's top K;
- per user: Recall@K, nDCG@K and MRR@K of one ranked list per user against the set of items
  that user met in the held-out split; with ``exclude_seen`` the items the user met before
  are removed from the list and from the relevant set (re-recommending them is trivial).

A held-out query knows only what was known before the split: the user's features, the
timestamp of the event (or of the user's first held-out event), and the user's last H items
in ``known`` (the earlier splits).
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

    user_queries: per-user query inputs [U]; relevant[u] / seen[u]: catalog row indices.
    event_queries: per-event query inputs [E]; event_items: catalog row of each event [E].
    """

    user_queries: dict
    relevant: list
    seen: list
    event_queries: dict
    event_items: np.ndarray


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
    relevant, seen = [], []
    for user in users:
        before = known_rows.get(user, set()) if exclude_seen else set()
        seen.append(np.fromiter(before, dtype=np.int64))
        relevant.append(target_rows[user] - before)

    position = pd.Series(np.arange(len(users)), index=users)
    event_history = history[position[target["user_id"]].to_numpy()]
    event_queries = query_features(target, event_history)
    return EvalSet(user_queries, relevant, seen, event_queries, row_of[target["item_id"]].to_numpy())


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
    """Recall@k, nDCG@k (binary gains) and MRR@k, averaged over queries with a non-empty relevant set.

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
        metrics[f"ndcg@{k}"] = float(np.mean((h * discounts[:k]).sum(axis=1) / ideal))
        metrics[f"mrr@{k}"] = float(np.mean(1.0 / first))
    metrics["num_queries"] = len(keep)
    return metrics


def evaluate_model(model, catalog: pd.DataFrame, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """Per-user ranking metrics and per-event FactorizedTopK accuracy of a trained model."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    from tfrs_app.retrieval.model import embed

    items = embed(model.candidate_tower, candidate_features(catalog))
    users = embed(model.query_tower, eval_set.user_queries)
    ranked = top_k(lambda a, b: users[a:b] @ items.T, len(users), max(ks), eval_set.seen)
    metrics = ranking_metrics(ranked, eval_set.relevant, ks)

    ids = catalog["item_id"].to_numpy().astype(str)
    index = tfrs.layers.factorized_top_k.BruteForce(k=max(ks)).index(tf.constant(items), tf.constant(ids))
    accuracy = tfrs.metrics.FactorizedTopK(candidates=index, ks=tuple(ks))
    events = embed(model.query_tower, eval_set.event_queries)
    for start in range(0, len(events), 4096):
        rows = eval_set.event_items[start:start + 4096]
        accuracy.update_state(tf.constant(events[start:start + 4096]), tf.constant(items[rows]),
                              true_candidate_ids=tf.constant(ids[rows]))
    for k, value in zip(ks, accuracy.result()):
        metrics[f"top_{k}_accuracy"] = float(value.numpy())
    return metrics


def evaluate_popularity(item_counts: np.ndarray, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """The same metrics for "most popular in training first" (item_counts aligned with catalog rows)."""
    counts = np.asarray(item_counts, dtype=np.float32)
    ranked = top_k(lambda a, b: np.broadcast_to(counts, (b - a, counts.size)), len(eval_set.relevant), max(ks),
                   eval_set.seen)
    metrics = ranking_metrics(ranked, eval_set.relevant, ks)
    order = np.argsort(-counts, kind="stable")
    for k in ks:
        metrics[f"top_{k}_accuracy"] = float(np.isin(eval_set.event_items, order[:k]).mean())
    return metrics
