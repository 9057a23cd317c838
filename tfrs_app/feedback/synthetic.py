"""A synthetic impression log with delayed conversions, pre-conversion signals and the truth.

Planted structure (all a pure function of ``DelayedSyntheticConfig`` and its seed):

- impressions arrive uniformly over ``days``; user and item are drawn uniformly;
- the eventual label is Bernoulli(sigmoid(2 * user . item + item bias + base_logit));
- a conversion's delay depends on the item: half the items draw it from an exponential, half
  from a log-normal (sigma 1), each with its own mean around ``mean_delay_days`` (log-normal
  spread 0.5); conversions later than ``attribution_days`` do not count (label 0), as in an
  attribution window;
- pre-conversion signals recorded at the impression: ``pre_click`` (probability 0.7 for an
  eventual converter, 0.2 otherwise) and ``pre_add_to_cart`` (0.45 and 0.03).

With the defaults and a time split of 80/10/10, the training window is 32 days and about 30% of
its eventual positives are still pending at its end (``pending_fraction``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tfrs_app.config import DelayedSyntheticConfig
from tfrs_app.data.schema import Interactions, validate_interactions

START = 1_577_836_800  # 2020-01-01 UTC
DAY = 86_400


@dataclass(frozen=True)
class DelayedData:
    """interactions: the validated log (engagement = eventual label); eventual_prob: [N] the true
    conversion probability of each event row; delay_days: [N] the delay (NaN: no conversion)."""

    interactions: Interactions
    eventual_prob: np.ndarray
    delay_days: np.ndarray


def generate_delayed(cfg: DelayedSyntheticConfig = DelayedSyntheticConfig()) -> DelayedData:
    rng = np.random.default_rng(cfg.seed)
    n = int(round(cfg.days * cfg.impressions_per_day))
    users = rng.normal(size=(cfg.num_users, cfg.latent_dim))
    items = rng.normal(size=(cfg.num_items, cfg.latent_dim)) / np.sqrt(cfg.latent_dim)
    bias = rng.normal(scale=0.7, size=cfg.num_items)
    exponential = rng.uniform(size=cfg.num_items) < 0.5
    mean_delay = cfg.mean_delay_days * np.exp(rng.normal(scale=0.5, size=cfg.num_items) - 0.125)

    u = rng.integers(cfg.num_users, size=n)
    i = rng.integers(cfg.num_items, size=n)
    times = START + np.sort(rng.uniform(0, cfg.days * DAY, size=n)).astype(np.int64)
    prob = 1 / (1 + np.exp(-(2 * np.einsum("nd,nd->n", users[u], items[i]) + bias[i] + cfg.base_logit)))
    converts = rng.uniform(size=n) < prob
    delay = np.where(exponential[i], rng.exponential(mean_delay[i]),
                     rng.lognormal(np.log(mean_delay[i]) - 0.5, 1.0))
    converts &= delay <= cfg.attribution_days
    delay = np.where(converts, delay, np.nan)
    conversion = np.where(converts, times + np.round(np.nan_to_num(delay) * DAY), np.nan)
    click = rng.uniform(size=n) < np.where(converts, 0.7, 0.2)
    cart = rng.uniform(size=n) < np.where(converts, 0.45, 0.03)

    genre = np.argmax(items @ rng.normal(size=(cfg.latent_dim, 6)), axis=1)
    events = pd.DataFrame({
        "user_id": np.char.add("u", u.astype(str)).astype(object),
        "item_id": np.char.add("i", i.astype(str)).astype(object),
        "timestamp": times,
        "conversion_timestamp": conversion,
        "pre_click": click.astype(np.float32),
        "pre_add_to_cart": cart.astype(np.float32),
        "item_title": np.char.add("Product ", i.astype(str)).astype(object),
        "item_genres": np.char.add("Category", genre[i].astype(str)).astype(object),
    })
    # validation sorts by (timestamp, user, item): keep the truth aligned with the sorted rows
    order = np.lexsort((events["item_id"].to_numpy(), events["user_id"].to_numpy(), times))
    events = events.iloc[order].reset_index(drop=True)
    return DelayedData(validate_interactions(events, source="synthetic_delayed"), prob[order], delay[order])


def pending_fraction(events: pd.DataFrame, cutoff: int) -> float:
    """Share of the eventual positives up to ``cutoff`` not yet converted at ``cutoff``."""
    before = events[events["timestamp"] <= cutoff]
    positive = before["conversion_timestamp"].notna()
    return float((before.loc[positive, "conversion_timestamp"] > cutoff).sum() / max(1, positive.sum()))
