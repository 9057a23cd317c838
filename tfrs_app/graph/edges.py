"""The item graph of an interaction log: directed "consumed after" edges and similarity edges.

From each user's events in time order (any log the data layer reads):

- **directed** A -> B, weight = how many times some user consumed B strictly later than A and
  within ``window_days`` (each event pairs with at most its next ``max_next`` events, so one
  user's binge of 2,000 ratings adds 40k pairs, not 2M), kept when the count is >= ``min_count``.
  Events at the same second have no order: they are co-views, never directed edges.
- **similarity** A - B (stored both ways), weight = how many times A and B were consumed within
  ``coview_minutes`` of each other in either order (same ``min_count``); with ``content_top_k``
  > 0, each item's top-k catalog neighbours by cosine of title-token and genre bags join them
  (weight 1 where co-view gave none).
- **follow-on counts** per item (before the threshold): the WatchNext raw value is the mean number
  of items consumed within the window after one consumption of it (``graph/watchnext.py``).

Rows are catalog rows (``item_ids`` order); items with no edges are still nodes (cold start).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_app.data.schema import GENRE_SEPARATOR
from tfrs_app.io import atomic_write_bytes

DAY = 86_400


@dataclass(frozen=True)
class ItemGraph:
    """item_ids [N] str; src/dst/weight [E]: directed edges (rows); sim_a/sim_b/sim_weight [S]:
    similarity edges, both directions stored; occurrences [N]: events per item; follow_ons [N]:
    follow-on events within the window summed over the item's occurrences."""

    item_ids: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    sim_a: np.ndarray
    sim_b: np.ndarray
    sim_weight: np.ndarray
    occurrences: np.ndarray
    follow_ons: np.ndarray

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def out_degree(self) -> np.ndarray:
        return np.bincount(self.src, minlength=self.num_items)

    def in_degree(self) -> np.ndarray:
        return np.bincount(self.dst, minlength=self.num_items)

    def one_way(self) -> np.ndarray:
        """[E] bool: the edge's reverse is not an edge."""
        codes = self.src.astype(np.int64) * self.num_items + self.dst
        reverse = self.dst.astype(np.int64) * self.num_items + self.src
        return ~np.isin(reverse, codes)

    def direction_evidence(self) -> np.ndarray:
        """[E] in [0, 1]: how sure the counts make us that the edge goes this way. With w uses of
        A -> B and r of B -> A, 1 - 2 P(X <= r) for X ~ Binomial(w + r, 1/2), clipped at 0: a
        one-way edge seen twice 0.5, ten times 0.998; a balanced pair 0. The asymmetric loss
        weighs each edge by it, so a pair that is one-way only because it is rare is not
        forced to score low backwards."""
        from scipy.stats import binom

        codes = self.src.astype(np.int64) * self.num_items + self.dst
        order = np.argsort(codes)
        reverse = self.dst.astype(np.int64) * self.num_items + self.src
        at = np.clip(np.searchsorted(codes[order], reverse), 0, max(len(codes) - 1, 0))
        found = len(codes) > 0 and codes[order][at] == reverse
        back = np.where(found, self.weight[order][at], 0.0) if len(codes) else np.zeros(0)
        evidence = 1.0 - 2.0 * binom.cdf(back, self.weight + back, 0.5)
        return np.clip(evidence, 0.0, 1.0).astype(np.float32)

    def describe(self) -> dict:
        degree = self.out_degree() + self.in_degree()
        sim_degree = np.bincount(self.sim_a, minlength=self.num_items)
        return {"items": int(self.num_items), "directed_edges": int(len(self.src)),
                "one_way_share": float(self.one_way().mean()) if len(self.src) else 0.0,
                "similarity_edges": int(len(self.sim_a) // 2),
                "items_without_edges": int(((degree == 0) & (sim_degree == 0)).sum()),
                "max_directed_degree": int(degree.max()) if self.num_items else 0}

    def save(self, path: str | os.PathLike) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **{f.name: getattr(self, f.name) for f in fields(self)})
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemGraph":
        with np.load(Path(path), allow_pickle=False) as data:
            missing = [f.name for f in fields(cls) if f.name not in data]
            if missing:
                raise ValueError(f"{path}: not an item graph (missing {missing})")
            return cls(**{f.name: data[f.name] for f in fields(cls)})


def ordered_events(events: pd.DataFrame, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user codes, item rows, timestamps, positions in ``events``) sorted by user then time;
    events of items outside ``item_ids`` are dropped (they are not nodes)."""
    rows = pd.Index(item_ids).get_indexer(events["item_id"].astype(str))
    keep = np.flatnonzero(rows >= 0)
    users = pd.factorize(events["user_id"].to_numpy()[keep])[0]
    times = events["timestamp"].to_numpy(np.int64)[keep]
    order = np.lexsort((times, users))
    return users[order], rows[keep][order].astype(np.int64), times[order], keep[order]


def pairs(users: np.ndarray, rows: np.ndarray, times: np.ndarray, max_next: int, max_gap_s: float,
          strictly_later: bool) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) positions of every ordered event pair of one user at most ``max_next``
    events and ``max_gap_s`` seconds apart, of two different items (inputs sorted by user then
    time, ``ordered_events``); with ``strictly_later``, pairs at the same second are left out."""
    first, second = [], []
    for offset in range(1, max_next + 1):
        if offset >= len(rows):
            break
        gap = times[offset:] - times[:-offset]
        ok = (users[offset:] == users[:-offset]) & (gap <= max_gap_s) & (rows[offset:] != rows[:-offset])
        if strictly_later:
            ok &= gap > 0
        if not ok.any() and (gap[users[offset:] == users[:-offset]] > max_gap_s).all():
            break  # every same-user pair this far apart is outside the window: so are farther ones
        at = np.flatnonzero(ok)
        first.append(at)
        second.append(at + offset)
    if not first:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(first), np.concatenate(second)


def _counted(a: np.ndarray, b: np.ndarray, n: int, min_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, counts = np.unique(a.astype(np.int64) * n + b, return_counts=True)
    keep = counts >= min_count
    return codes[keep] // n, codes[keep] % n, counts[keep].astype(np.float32)


def build_graph(events: pd.DataFrame, catalog: pd.DataFrame, window_days: float = 7.0, min_count: int = 2,
                max_next: int = 20, coview_minutes: float = 30.0, content_top_k: int = 0) -> ItemGraph:
    """The item graph of ``events`` (user_id, item_id, timestamp) over ``catalog``'s items."""
    if min_count < 1 or max_next < 1 or window_days <= 0:
        raise ValueError(f"build_graph: min_count and max_next must be >= 1 and window_days > 0, "
                         f"got {min_count}, {max_next}, {window_days}")
    item_ids = catalog["item_id"].to_numpy().astype(str)  # a str array: np.load refuses object arrays
    n = len(item_ids)
    users, rows, times, _ = ordered_events(events, item_ids)
    before, after = (rows[at] for at in pairs(users, rows, times, max_next, window_days * DAY, strictly_later=True))
    src, dst, weight = _counted(before, after, n, min_count)
    near_a, near_b = (rows[at] for at in pairs(users, rows, times, max_next, coview_minutes * 60,
                                               strictly_later=False))
    sim_a, sim_b, sim_weight = _counted(np.concatenate([near_a, near_b]), np.concatenate([near_b, near_a]), n,
                                        min_count)
    if content_top_k > 0:
        sim_a, sim_b, sim_weight = _with_content(catalog, content_top_k, sim_a, sim_b, sim_weight)
    return ItemGraph(item_ids=item_ids, src=src, dst=dst, weight=weight, sim_a=sim_a, sim_b=sim_b,
                     sim_weight=sim_weight, occurrences=np.bincount(rows, minlength=n).astype(np.int64),
                     follow_ons=np.bincount(before, minlength=n).astype(np.float64))


def _with_content(catalog: pd.DataFrame, k: int, sim_a, sim_b, sim_weight):
    """Adds each item's top-``k`` neighbours by cosine of its title tokens and genres (both ways)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    genres = catalog["item_genres"].astype(str).map(
        lambda text: " ".join(f"genre_{g}" for g in text.split(GENRE_SEPARATOR) if g))  # never a title word
    text = (catalog["item_title"].astype(str) + " " + genres).to_numpy()
    try:
        bags = normalize(CountVectorizer(token_pattern=r"(?u)\b\w+\b").fit_transform(text))
    except ValueError:  # no tokens at all (empty titles and genres): content adds nothing
        return sim_a, sim_b, sim_weight
    n = bags.shape[0]
    extra_a, extra_b = [], []
    for start in range(0, n, 2048):  # [2048, N] similarity blocks keep memory flat
        block = (bags[start:start + 2048] @ bags.T).toarray()
        block[np.arange(block.shape[0]), np.arange(start, start + block.shape[0])] = -1.0
        top = np.argpartition(-block, min(k, n - 1) - 1, axis=1)[:, :k] if n > 1 else np.zeros((block.shape[0], 0), int)
        for i, neighbours in enumerate(top):
            good = neighbours[block[i, neighbours] > 0]
            extra_a.extend([start + i] * len(good)), extra_b.extend(good)
    a = np.concatenate([sim_a, extra_a, extra_b]).astype(np.int64)
    b = np.concatenate([sim_b, extra_b, extra_a]).astype(np.int64)
    w = np.concatenate([sim_weight, np.ones(2 * len(extra_a), np.float32)])
    codes, first = np.unique(a * n + b, return_index=True)  # co-view weights win over content's 1
    return codes // n, codes % n, w[first].astype(np.float32)


def held_out_pairs(history: pd.DataFrame, later: pd.DataFrame, item_ids: np.ndarray, window_days: float,
                   max_next: int) -> pd.DataFrame:
    """The directed pairs (source, target rows, one per user and pair) whose target event is in
    ``later`` and whose source is any earlier event of the same user (in ``history`` or ``later``)
    within the window: what the graph should predict for a period it did not see."""
    both = pd.concat([history, later], ignore_index=True)
    users, rows, times, positions = ordered_events(both, item_ids)
    first, second = pairs(users, rows, times, max_next, window_days * DAY, strictly_later=True)
    held = positions[second] >= len(history)  # the target event is in ``later``
    frame = pd.DataFrame({"user": users[second][held], "source": rows[first][held], "target": rows[second][held]})
    return frame.astype(np.int64).drop_duplicates().reset_index(drop=True)
