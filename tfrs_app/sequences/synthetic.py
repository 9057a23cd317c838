"""A synthetic session log with planted sequential structure and its ground truth.

Planted structure (a pure function of ``SequentialSyntheticConfig`` and its seed):

- The ``num_items`` items are dealt at random into ``num_clusters`` clusters of even size
  (sizes differ by at most one).
- Each cluster has ``successors`` preferred next clusters, chosen at random among the others
  (never itself). A session is a walk of a hidden Markov chain over the clusters: the first
  cluster is uniform; each step moves to one of the current cluster's successors with
  probability ``transition_strength`` (uniform among them), else to a uniformly random
  cluster. So a step lands on a successor with probability s + (1 - s) * k / C.
- Each step emits an item of the current cluster by a Zipf popularity, 1 / rank **
  ``zipf_exponent`` over a random order of the cluster's items, never one already in the
  session (redrawn; the same as the popularity renormalised over the items left).
- Each user has max(1, Poisson(``sessions_per_user``)) sessions of 2 + Poisson(
  ``mean_session_length`` - 2) events, at most the smallest cluster's size (so an unused item
  is always left), starting at uniform times over ``days``. A session's events are
  exponential(``mean_gap_seconds``) apart, rounded to whole seconds and at least 1 s, so a
  session has no ties. ``session_id`` is set (``s<n>``): sessions are given, not cut at gaps.
- Labels: engagement = 1 for every event (a click log, as ``data/synthetic.py``), so the
  retrieval and ranking stages run on it too.
- Metadata: the title is neutral (``Item 123``) and the genres are the cluster
  (``Cluster7``): content features know the cluster, while an id model must learn it from
  the sequences.

``SequentialData.truth`` holds the clusters, the chain and each event's hidden cluster.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tfrs_app.config import SequentialSyntheticConfig
from tfrs_app.data.schema import Interactions, validate_interactions

START = 1_577_836_800  # 2020-01-01 UTC
DAY = 86_400
REDRAWS = 20  # vectorised redraws of repeated items; the few still repeated are drawn exactly


@dataclass(frozen=True)
class SequentialTruth:
    """What the generator planted. Row i of the item arrays is item ``i{i}`` (``item_ids[i]``).

    item_cluster [I]; item_probability [I]: P(item | its cluster), the Zipf popularity before
    the no-repeat rule; transition [C, C]: P(next cluster | cluster), rows sum to 1;
    successors [C, k]: each cluster's preferred next clusters; event_cluster [N]: the hidden
    cluster of each event, aligned with the rows of ``interactions.events``.
    """

    item_ids: np.ndarray
    item_cluster: np.ndarray
    item_probability: np.ndarray
    transition: np.ndarray
    successors: np.ndarray
    event_cluster: np.ndarray


@dataclass(frozen=True)
class SequentialData:
    interactions: Interactions
    truth: SequentialTruth


def generate_sequential(cfg: SequentialSyntheticConfig = SequentialSyntheticConfig()) -> SequentialData:
    """The log and its truth; about num_users * sessions_per_user * mean_session_length events."""
    if cfg.successors >= cfg.num_clusters:
        raise ValueError(f"data.sequential.successors: must be < num_clusters ({cfg.num_clusters}), a cluster is "
                         f"never its own successor; got {cfg.successors}")
    rng = np.random.default_rng(cfg.seed)
    clusters, k = cfg.num_clusters, cfg.successors
    item_cluster = rng.permutation(np.arange(cfg.num_items) % clusters)
    others = np.argsort(rng.random((clusters, clusters - 1)), axis=1)[:, :k]  # k of the C - 1 other clusters
    successors = others + (others >= np.arange(clusters)[:, None])  # skip the cluster itself
    transition = np.full((clusters, clusters), (1.0 - cfg.transition_strength) / clusters)
    transition[np.arange(clusters)[:, None], successors] += cfg.transition_strength / k
    sampler = _ZipfSampler(item_cluster, cfg.zipf_exponent, rng)

    per_user = np.maximum(1, rng.poisson(cfg.sessions_per_user, size=cfg.num_users))
    session_user = np.repeat(np.arange(cfg.num_users), per_user)
    n = session_user.size
    lengths = np.minimum(2 + rng.poisson(cfg.mean_session_length - 2, size=n), np.bincount(item_cluster).min())
    steps = int(lengths.max())
    hidden = np.empty((n, steps), dtype=np.int64)
    hidden[:, 0] = rng.integers(clusters, size=n)
    for t in range(1, steps):
        follow = rng.random(n) < cfg.transition_strength
        preferred = successors[hidden[:, t - 1], rng.integers(k, size=n)]
        hidden[:, t] = np.where(follow, preferred, rng.integers(clusters, size=n))
    items = np.full((n, steps), -1, dtype=np.int64)
    for t in range(steps):
        sampler.fill(items, hidden, t, np.flatnonzero(lengths > t), rng)
    gaps = np.maximum(1, np.rint(rng.exponential(cfg.mean_gap_seconds, size=(n, steps)))).astype(np.int64)
    gaps[:, 0] = 0
    times = START + rng.uniform(0, cfg.days * DAY, size=n).astype(np.int64)[:, None] + np.cumsum(gaps, axis=1)

    kept = np.arange(steps)[None, :] < lengths[:, None]  # row-major: sessions in turn, each in step order
    session = np.repeat(np.arange(n), lengths)
    item_ids = np.char.add("i", np.arange(cfg.num_items).astype(str)).astype(object)
    titles = np.char.add("Item ", np.arange(cfg.num_items).astype(str)).astype(object)
    genres = np.char.add("Cluster", item_cluster.astype(str)).astype(object)
    event_items = items[kept]
    events = pd.DataFrame({
        "user_id": np.char.add("u", session_user[session].astype(str)).astype(object),
        "item_id": item_ids[event_items],
        "timestamp": times[kept],
        "session_id": np.char.add("s", session.astype(str)).astype(object),
        "engagement": np.ones(event_items.size, dtype=np.float32),
        "item_title": titles[event_items],
        "item_genres": genres[event_items],
    })
    # Sort exactly as validation does, so the per-event truth stays aligned with the events.
    events["_cluster"] = hidden[kept]
    events = events.sort_values(["timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    event_cluster = events.pop("_cluster").to_numpy()
    catalog = pd.DataFrame({"item_id": item_ids, "item_title": titles, "item_genres": genres})
    truth = SequentialTruth(item_ids=item_ids, item_cluster=item_cluster, item_probability=sampler.probability,
                            transition=transition, successors=successors, event_cluster=event_cluster)
    return SequentialData(validate_interactions(events, catalog, source="synthetic_sequential"), truth)


class _ZipfSampler:
    """Draws items of given clusters by their Zipf popularity, by inverse CDF over the items
    grouped by cluster in popularity order (cluster c's CDF runs from c to c + 1)."""

    def __init__(self, item_cluster: np.ndarray, exponent: float, rng: np.random.Generator):
        self.order = np.lexsort((rng.random(item_cluster.size), item_cluster))  # by cluster, random rank within
        grouped = item_cluster[self.order]
        self.start = np.searchsorted(grouped, np.arange(grouped.max() + 1))  # [C] each cluster's first slot
        self.end = np.append(self.start[1:], grouped.size)
        rank = np.arange(grouped.size) - self.start[grouped] + 1
        weight = rank ** -float(exponent)
        within = weight / np.bincount(grouped, weights=weight)[grouped]
        self.probability = np.empty(grouped.size)
        self.probability[self.order] = within
        cdf = np.cumsum(within)
        cdf -= np.append(0.0, cdf[self.end[:-1] - 1])[grouped]  # restart at each cluster
        cdf[self.end - 1] = 1.0
        self.cdf = grouped + cdf

    def draw(self, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        slot = np.searchsorted(self.cdf, clusters + rng.random(clusters.size), side="right")
        return self.order[np.minimum(slot, self.end[clusters] - 1)]  # c + u may round up to c + 1

    def fill(self, items: np.ndarray, hidden: np.ndarray, t: int, rows: np.ndarray, rng: np.random.Generator) -> None:
        """items[rows, t] drawn from clusters hidden[rows, t], none already in items[rows, :t]."""
        for _ in range(REDRAWS):
            items[rows, t] = self.draw(hidden[rows, t], rng)
            rows = rows[(items[rows, :t] == items[rows, t][:, None]).any(axis=1)]
            if rows.size == 0:
                return
        for row in rows:  # many items of the cluster used: draw from the popularity of those left
            members = self.order[self.start[hidden[row, t]]:self.end[hidden[row, t]]]
            weight = self.probability[members] * ~np.isin(members, items[row, :t])
            items[row, t] = rng.choice(members, p=weight / weight.sum())
