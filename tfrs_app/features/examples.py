"""Model inputs as dicts of numpy arrays, keyed by the names the towers and signatures use.

Query inputs:     user_id [N] str, user_<f> [N] str, timestamp [N] int64,
                  history [N, H] str (most recent first, "" pads).
Candidate inputs: item_id [N] str, item_title [N] str, item_genres [N] str ("|"-joined).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tfrs_app.data.schema import user_feature_columns


def with_history(events: pd.DataFrame, history_length: int) -> np.ndarray:
    """For each event, the ids of the same user's last ``history_length`` events in ``events``
    that happened strictly before it.

    events must be sorted by time. Returns [N, H] object array, most recent first, "" padded.
    Only events inside the frame count, so a training row never sees a later split. Events
    sharing the event's timestamp are left out: they are simultaneous, and their order in a log
    is an artifact (MovieLens stores a rating session's ratings under one second, sorted by id),
    which a model would otherwise learn as a "next item" pattern that no request has.
    """
    n = len(events)
    history = np.full((n, history_length), "", dtype=object)
    if n == 0:
        return history
    users = pd.factorize(events["user_id"])[0]
    order = np.lexsort((np.arange(n), users))  # by user, then time (events are time-sorted)
    u, times = users[order], events["timestamp"].to_numpy()[order]
    items = events["item_id"].to_numpy(dtype=object)[order]
    position = np.arange(n)
    new_user = np.r_[True, u[1:] != u[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, position, 0))
    run_start = np.maximum.accumulate(np.where(new_user | np.r_[True, times[1:] != times[:-1]], position, 0))
    for lag in range(1, history_length + 1):
        source = run_start - lag
        valid = source >= user_start
        history[order[valid], lag - 1] = items[source[valid]]
    return history


def user_histories(known: pd.DataFrame, user_ids: np.ndarray, history_length: int) -> np.ndarray:
    """The last ``history_length`` items of each user in ``known`` (time-sorted), [U, H] as above."""
    tails = known.groupby("user_id", sort=False)["item_id"].apply(lambda s: s.to_numpy()[::-1][:history_length])
    history = np.full((len(user_ids), history_length), "", dtype=object)
    for row, user in enumerate(user_ids):
        items = tails.get(user)
        if items is not None:
            history[row, : len(items)] = items
    return history


def query_features(frame: pd.DataFrame, history: np.ndarray) -> dict[str, np.ndarray]:
    """Query inputs for each row of ``frame`` (which has user_id, timestamp, user_* columns)."""
    features = {
        "user_id": frame["user_id"].to_numpy(dtype=object),
        "timestamp": frame["timestamp"].to_numpy(dtype=np.int64),
        "history": history,
    }
    for column in user_feature_columns(frame):
        features[column] = frame[column].to_numpy(dtype=object)
    return features


def candidate_features(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Candidate inputs for each row of ``frame`` (events or the catalog)."""
    return {c: frame[c].to_numpy(dtype=object) for c in ("item_id", "item_title", "item_genres")}


def as_strings(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Object arrays to UTF-8 bytes, which tf.constant and tf.data take without per-element checks."""
    return {k: (np.char.encode(v.astype(str), "utf-8") if v.dtype == object else v) for k, v in features.items()}
