"""The embedded default data: an interaction log with planted, known structure.

Shared by the demo, the tests, the notebooks and the benchmarks, so a claim such as "the
model beats popularity by 2x" is checked against structure we put there on purpose:

- users and items have latent factors (users N(0, I), items N(0, I/d)), so user . item ~ N(0, 1);
- items have a log-normal popularity (a skewed head and a long tail);
- an item's genres and title words are the nearest of random prototypes in latent space, so
  content predicts taste and helps items nobody has rated (cold start);
- a user's segment feature is the nearest of random prototypes to the user's factors;
- a user picks ``n_u`` distinct items from softmax(affinity * user.item + bias) (Gumbel top-k),
  at times spread over a year;
- labels: engagement = 1 for every logged event; satisfaction is Bernoulli with a logit of
  affinity + item quality plus per-item (heteroscedastic) noise; responsibility is 0 with
  high probability for a planted set of unsafe items and rarely for others (noisy reports).

Everything is a pure function of the config and its seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tfrs_app.data.schema import Interactions, validate_interactions

GENRE_NAMES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Thriller", "Documentary",
               "Animation", "Fantasy", "Mystery", "Western", "Musical")
ADJECTIVES = ("Crimson", "Silent", "Golden", "Broken", "Hidden", "Electric", "Frozen", "Wild",
              "Lonely", "Burning", "Velvet", "Iron", "Paper", "Midnight", "Hollow", "Bright")
NOUNS = ("Harbor", "Empire", "Garden", "Signal", "River", "Machine", "Kingdom", "Letter",
         "Mountain", "Circus", "Voyage", "Mirror", "Orchard", "Station", "Tide", "Engine")
START = 1_577_836_800  # 2020-01-01 UTC
YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class GroundTruth:
    """What the generator planted. Row i of the factor arrays is ``user_ids[i]`` / ``item_ids[i]``.

    satisfaction_prob / responsibility_prob: [num_events], aligned with ``events`` rows.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray  # [U, d]
    item_factors: np.ndarray  # [I, d]
    item_bias: np.ndarray  # [I] log-popularity
    item_noise: np.ndarray  # [I] std of the satisfaction logit noise
    unsafe: np.ndarray  # [I] bool
    satisfaction_prob: np.ndarray
    responsibility_prob: np.ndarray


@dataclass(frozen=True)
class SyntheticData:
    interactions: Interactions
    truth: GroundTruth


def generate(
    num_users: int = 3000,
    num_items: int = 2000,
    mean_interactions_per_user: float = 40.0,
    latent_dim: int = 8,
    affinity_strength: float = 3.0,
    popularity_strength: float = 1.0,
    num_genres: int = 12,
    unsafe_fraction: float = 0.05,
    seed: int = 0,
) -> SyntheticData:
    """Generates the log. Sizes: about num_users * mean_interactions_per_user events."""
    rng = np.random.default_rng(seed)
    d = latent_dim
    users = rng.normal(size=(num_users, d))
    items = rng.normal(size=(num_items, d)) / np.sqrt(d)
    bias = rng.normal(scale=popularity_strength, size=num_items)
    user_ids = np.array([f"u{i}" for i in range(num_users)], dtype=object)
    item_ids = np.array([f"i{i}" for i in range(num_items)], dtype=object)

    # Content from latent factors: nearest prototypes.
    genre_names = [GENRE_NAMES[g] if g < len(GENRE_NAMES) else f"Genre{g}" for g in range(num_genres)]
    genre_scores = items @ rng.normal(size=(d, num_genres))
    top2 = np.argsort(-genre_scores, axis=1)[:, :2]
    genres = np.array(["|".join(genre_names[g] for g in sorted(row)) for row in top2], dtype=object)
    adjective = np.argmax(items @ rng.normal(size=(d, len(ADJECTIVES))), axis=1)
    noun = np.argmax(items @ rng.normal(size=(d, len(NOUNS))), axis=1)
    titles = np.array([f"The {ADJECTIVES[a]} {NOUNS[n]} ({i})" for i, (a, n) in enumerate(zip(adjective, noun))], dtype=object)
    segment = np.argmax(users @ rng.normal(size=(d, 6)), axis=1)

    # Choices: Gumbel top-k over each user's logits = sampling without replacement.
    counts = np.clip(rng.lognormal(np.log(mean_interactions_per_user) - 0.32, 0.8, size=num_users).astype(int),
                     3, max(3, num_items // 2))
    logits = affinity_strength * (users @ items.T) + bias[None, :]
    order = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1)
    rows = np.repeat(np.arange(num_users), counts)
    cols = np.concatenate([order[u, : counts[u]] for u in range(num_users)])

    # Times: each user is active over a window inside the year; events in random order.
    starts = rng.uniform(0, 0.8 * YEAR, size=num_users)
    spans = rng.uniform(0.05, 0.2, size=num_users) * YEAR
    times = START + (starts[rows] + rng.uniform(size=rows.size) * spans[rows]).astype(np.int64)

    # Labels.
    affinity = np.einsum("ij,ij->i", users[rows], items[cols])
    quality = rng.normal(size=num_items)
    noise = rng.uniform(0.0, 3.0, size=num_items)
    satisfaction_logit = 1.5 * affinity - 1.5 + quality[cols] + noise[cols] * rng.normal(size=rows.size)
    satisfaction_prob = 1.0 / (1.0 + np.exp(-satisfaction_logit))
    satisfaction = (rng.uniform(size=rows.size) < satisfaction_prob).astype(np.float32)
    unsafe = np.zeros(num_items, dtype=bool)
    if unsafe_fraction > 0:
        direction = items @ rng.normal(size=d)
        unsafe[np.argsort(-direction)[: max(1, int(round(unsafe_fraction * num_items)))]] = True
    responsibility_prob = np.where(unsafe[cols], 0.15, 0.97)
    responsibility = (rng.uniform(size=rows.size) < responsibility_prob).astype(np.float32)
    rating = np.where(responsibility == 0, 1.0,
                      np.where(satisfaction == 1, np.where(satisfaction_logit > 1.5, 5.0, 4.0),
                               np.where(satisfaction_logit > -1.5, 3.0, 2.0)))

    events = pd.DataFrame({
        "user_id": user_ids[rows],
        "item_id": item_ids[cols],
        "timestamp": times,
        "rating": rating.astype(np.float32),
        "engagement": np.ones(rows.size, dtype=np.float32),
        "satisfaction": satisfaction,
        "responsibility": responsibility,
        "item_title": titles[cols],
        "item_genres": genres[cols],
        "user_segment": np.array([f"segment{s}" for s in segment], dtype=object)[rows],
    })
    catalog = pd.DataFrame({"item_id": item_ids, "item_title": titles, "item_genres": genres})
    # Sort exactly as validation does, so the per-row truth stays aligned with the events.
    events["_row"] = np.arange(len(events))
    events = events.sort_values(["timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    order_rows = events.pop("_row").to_numpy()
    interactions = validate_interactions(events, catalog, source="synthetic")
    truth = GroundTruth(
        user_ids=user_ids, item_ids=item_ids, user_factors=users, item_factors=items, item_bias=bias,
        item_noise=noise, unsafe=unsafe,
        satisfaction_prob=satisfaction_prob[order_rows], responsibility_prob=responsibility_prob[order_rows],
    )
    return SyntheticData(interactions=interactions, truth=truth)
