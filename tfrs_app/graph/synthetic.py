"""A synthetic log with a planted directed item graph and its ground truth.

Planted structure (a pure function of ``DirectedSyntheticConfig`` and its seed):

- ``num_groups`` product lines; each has ``levels`` levels of ``items_per_level`` items. Level 0
  are the **base** items (phones), levels above are **accessories** (cases, then screen
  protectors for the cases...). Every item below the top level has ``successors`` follow-on
  items at the next level of its own group, chosen with weights 1 / j ** ``decay`` (0: alike),
  so an item has about as many predecessors as follow-ons: a symmetric score that ranks both
  alike fills its top 10 with the wrong half.
- A user makes Poisson(``journeys_per_user``) journeys: a base item drawn by a log-normal
  popularity, then, with ``continue_probability`` per step, a follow-on of the current item
  after an exponential gap of ``mean_gap_days``. Journeys start at uniform times over ``days``.
- Poisson(``noise_events_per_user``) extra base items per user, at uniform times: symmetric
  noise between bases.
- A user consumes an item at most once (a walk ends at an item already consumed), and every
  accessory in a user's log comes after an item it is a follow-on of: the planted edges go
  one way, up one level, never down.
- Metadata names the line and the kind, as a product title would ("case" is not "phone"): the
  genres are the line and the level (``Line7|Level2``), the title the line's two words, the
  kind (``Base``, ``Accessory1``, ...) and the item's number. So an item held out of the
  graph can be placed from metadata alone (cold start); which items it follows must still be
  learned from the graph, since every item of a level has its own follow-ons.

``DirectedData.truth`` holds each item's group and level and the planted successor pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tfrs_app.config import DirectedSyntheticConfig
from tfrs_app.data.schema import Interactions, validate_interactions
from tfrs_app.data.synthetic import ADJECTIVES, NOUNS

START = 1_577_836_800  # 2020-01-01 UTC
DAY = 86_400


@dataclass(frozen=True)
class DirectedTruth:
    """item_ids [N]; group [N], level [N] ints; successors: {(source id, target id): weight}."""

    item_ids: np.ndarray
    group: np.ndarray
    level: np.ndarray
    successors: dict

    def is_base(self, item_id: str) -> bool:
        return bool(self.level[int(item_id[1:])] == 0)


@dataclass(frozen=True)
class DirectedData:
    interactions: Interactions
    truth: DirectedTruth


def generate_directed(cfg: DirectedSyntheticConfig = DirectedSyntheticConfig()) -> DirectedData:
    rng = np.random.default_rng(cfg.seed)
    per_group = cfg.items_per_level * cfg.levels
    num_items = cfg.num_groups * per_group
    item = np.arange(num_items)
    group, within = item // per_group, item % per_group
    level = within // cfg.items_per_level

    follow = np.full((num_items, cfg.successors), -1, dtype=np.int64)
    weights = 1.0 / np.arange(1, cfg.successors + 1) ** cfg.decay
    weights /= weights.sum()
    for i in item[level < cfg.levels - 1]:
        chosen = rng.choice(cfg.items_per_level, size=cfg.successors, replace=False)
        follow[i] = (i // cfg.items_per_level + 1) * cfg.items_per_level + chosen  # the next level, same group
    bases = item[level == 0]
    base_popularity = rng.lognormal(0.0, 1.0, size=bases.size)
    base_popularity /= base_popularity.sum()

    users, items, times = [], [], []
    span = cfg.days * DAY
    for u in range(cfg.num_users):
        seen: set[int] = set()
        for _ in range(rng.poisson(cfg.journeys_per_user)):
            current, t = int(rng.choice(bases, p=base_popularity)), rng.uniform(0, span)
            while current >= 0 and current not in seen:
                seen.add(current)
                users.append(u), items.append(current), times.append(t)
                if follow[current, 0] < 0 or rng.uniform() > cfg.continue_probability:
                    break
                current = int(follow[current, rng.choice(cfg.successors, p=weights)])
                t += rng.exponential(cfg.mean_gap_days * DAY)
        for _ in range(rng.poisson(cfg.noise_events_per_user)):
            current = int(rng.choice(bases, p=base_popularity))
            if current not in seen:
                seen.add(current)
                users.append(u), items.append(current), times.append(rng.uniform(0, span))
    users, items = np.asarray(users), np.asarray(items)
    times = START + np.asarray(times).astype(np.int64)

    item_ids = np.char.add("i", item.astype(str)).astype(object)
    genres = np.array([f"Line{g}|Level{l}" for g, l in zip(group, level)], dtype=object)
    adjective, noun = group % len(ADJECTIVES), (group // len(ADJECTIVES) * 7 + group) % len(NOUNS)
    kinds = np.array(["Base"] + [f"Accessory{l}" for l in range(1, cfg.levels)], dtype=object)
    titles = np.array([f"{ADJECTIVES[a]} {NOUNS[n]} {kinds[l]} {i}" for a, n, l, i in zip(adjective, noun, level, item)],
                      dtype=object)
    events = pd.DataFrame({
        "user_id": np.char.add("u", users.astype(str)).astype(object),
        "item_id": item_ids[items],
        "timestamp": times,
        "engagement": np.ones(len(items), dtype=np.float32),
        "item_title": titles[items],
        "item_genres": genres[items],
    })
    catalog = pd.DataFrame({"item_id": item_ids, "item_title": titles, "item_genres": genres})
    successors = {(item_ids[i], item_ids[j]): float(w) for i in item for j, w in zip(follow[i], weights) if j >= 0}
    truth = DirectedTruth(item_ids=item_ids, group=group, level=level, successors=successors)
    return DirectedData(validate_interactions(events, catalog, source="synthetic_directed"), truth)
