"""Ranking examples: logged events plus sampled unengaged impressions, with masked labels.

Logged events carry their labels. Most logs (MovieLens, our synthetic one) hold only events
the user acted on, so engagement needs negatives: for every logged event we draw
``per_positive`` items in proportion to ``train_count ** power`` (popularity-weighted, like
the impressions a real feed shows), dropping any the user has an event with. A sampled
impression has engagement 0, and satisfaction and responsibility *unknown*: they are masked
out of those heads' losses (weight 0), never filled with 0.

Labels (float32 [N], NaN = unknown):
- engagement: the event's ``engagement`` column, 1 where absent; 0 for sampled impressions;
- satisfaction: the event's ``satisfaction``, only where engagement == 1 (given engagement);
- responsibility: the event's ``responsibility``.

Model inputs per label: ``label_<head>`` (NaN -> 0) and ``weight_<head>`` (0 where the label is
unknown, else the log's ``weight_<head>`` column or 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import HEADS
from tfrs_app.features.examples import as_strings, candidate_features, query_features, with_history
from tfrs_app.features.space import FeatureSpace

MAX_POSITION_BUCKETS = 50


@dataclass
class RankingExamples:
    """features: model inputs (numpy, [N] or [N, H]; ``position`` only when the bias tower is on);
    labels: {head: [N] float32, NaN unknown}; weights: {head: [N] float32} sample weights from
    the log (1 where it has none); is_logged: [N] bool, False for sampled impressions."""

    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    is_logged: np.ndarray

    def __len__(self) -> int:
        return len(self.is_logged)

    def inputs(self) -> dict[str, np.ndarray]:
        """Features plus label_<head> / weight_<head>, ready for ``tf.data``."""
        out = as_strings(self.features)
        for head, label in self.labels.items():
            known = ~np.isnan(label)
            out[f"label_{head}"] = np.where(known, label, 0.0).astype(np.float32)
            out[f"weight_{head}"] = np.where(known, self.weights[head], 0.0).astype(np.float32)
        return out

    def model_features(self) -> dict[str, np.ndarray]:
        """The inputs the serving signatures take (no labels, weights or position)."""
        return {k: v for k, v in as_strings(self.features).items() if k != "position"}


def position_buckets(train: pd.DataFrame) -> int:
    """Number of position buckets the bias tower needs (0: the log has no positions)."""
    if "position" not in train.columns:
        return 0
    return int(min(MAX_POSITION_BUCKETS, train["position"].max() + 1)) if len(train) else 0


def sample_negatives(events: pd.DataFrame, space: FeatureSpace, per_positive: int, power: float, seed: int,
                     exclude: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rows [M] into ``events``, item ids [M]): popularity-weighted impressions not in ``exclude``'s
    (user, item) pairs; ``per_positive`` per event, redrawing collisions up to 5 times (a user who
    has met nearly the whole catalog may get fewer)."""
    if per_positive == 0 or len(events) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    rng = np.random.default_rng(seed)
    items = np.array(space.item_ids, dtype=object)
    weights = np.asarray(space.item_counts, dtype=np.float64) ** power
    known = pd.MultiIndex.from_arrays([exclude["user_id"].to_numpy(), exclude["item_id"].to_numpy()])
    users = events["user_id"].to_numpy()
    rows = np.repeat(np.arange(len(events)), per_positive)
    drawn = np.empty(rows.size, dtype=object)
    pending = np.arange(rows.size)
    for _ in range(6):
        drawn[pending] = items[rng.choice(len(items), size=pending.size, p=weights / weights.sum())]
        clash = pd.MultiIndex.from_arrays([users[rows[pending]], drawn[pending]]).isin(known)
        pending = pending[clash]
        if pending.size == 0:
            break
    keep = np.ones(rows.size, dtype=bool)
    keep[pending] = False
    return rows[keep], drawn[keep]


def ranking_examples(target: pd.DataFrame, context: pd.DataFrame, catalog: pd.DataFrame, space: FeatureSpace,
                     per_positive: int, power: float = 1.0, seed: int = 0, use_position: bool = False) -> RankingExamples:
    """Examples for the events of ``target`` (a split), with histories drawn from ``context``
    (the earlier splits) and ``target`` itself, and sampled impressions for engagement."""
    history = _histories(target, context, space.history_length)
    rows, drawn = sample_negatives(target, space, per_positive, power, seed,
                                   pd.concat([context[["user_id", "item_id"]], target[["user_id", "item_id"]]]))
    n, m = len(target), len(rows)
    all_rows = np.concatenate([np.arange(n), rows])

    frame = target.iloc[all_rows].reset_index(drop=True)
    items = catalog.set_index("item_id").reindex(drawn)
    frame.loc[n:, "item_id"] = drawn
    frame.loc[n:, "item_title"] = items["item_title"].fillna("").to_numpy()
    frame.loc[n:, "item_genres"] = items["item_genres"].fillna("").to_numpy()
    features = query_features(frame, history[all_rows])
    features.update(candidate_features(frame))

    logged = np.concatenate([np.ones(n, dtype=bool), np.zeros(m, dtype=bool)])
    engagement = _column(target, "engagement", 1.0)
    labels = {
        "engagement": np.concatenate([engagement, np.zeros(m, np.float32)]),
        "satisfaction": np.concatenate([np.where(engagement == 1, _column(target, "satisfaction"), np.nan),
                                        np.full(m, np.nan)]).astype(np.float32),
        "responsibility": np.concatenate([_column(target, "responsibility"), np.full(m, np.nan)]).astype(np.float32),
    }
    weights = {head: np.concatenate([_column(target, f"weight_{head}", 1.0), np.ones(m, np.float32)]) for head in HEADS}
    if use_position and "position" in target.columns:
        # an impression shown beside an event gets that event's slot: a sentinel would give the label away
        position = target["position"].to_numpy(np.int64)
        features["position"] = np.concatenate([position, position[rows]])
    return RankingExamples(features, labels, weights, logged)


def dataset(examples: RankingExamples, batch_size: int, seed: int, shuffle: bool = True) -> tf.data.Dataset:
    data = tf.data.Dataset.from_tensor_slices(examples.inputs())
    if shuffle:
        data = data.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(2)


def _histories(target: pd.DataFrame, context: pd.DataFrame, length: int) -> np.ndarray:
    """[len(target), H]: each target event's previous items among context + earlier target events."""
    full = pd.concat([context.assign(_target=-1), target.assign(_target=np.arange(len(target)))], ignore_index=True)
    full = full.sort_values("timestamp", kind="stable").reset_index(drop=True)
    history = with_history(full, length)
    which = full["_target"].to_numpy()
    out = np.empty((len(target), length), dtype=object)
    out[which[which >= 0]] = history[which >= 0]
    return out


def _column(frame: pd.DataFrame, name: str, default: float = np.nan) -> np.ndarray:
    if name in frame.columns:
        return frame[name].to_numpy(np.float32)
    return np.full(len(frame), default, np.float32)
