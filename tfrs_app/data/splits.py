"""Train / validation / test splits of an interaction log.

- ``time_split`` (default): one global cut in time. Validation and test events happen after
  every training event, as in production, so nothing from the future leaks into training.
- ``random_split``: events shuffled under a seed, as in the TFRS tutorials (80/20 there); kept
  so our numbers can be compared with theirs. It leaks the future and flatters every model.
  ``test_fraction`` of all events is test; validation is carved out of the rest, never out of
  the test share (``val_fraction=0.1, test_fraction=0.2`` is 70/10/20).
- ``leave_last_out_split``: each user's last event is test and the one before it validation
  (the sequential-recommendation protocol); users with fewer than three events stay in train.
- ``session``: whole sessions by the time they end, the last ``session_test_days`` test and
  the ``session_val_days`` before them validation; items unseen in training are dropped from
  those sessions, then sessions shorter than 2 (``data/sessions.py``, the GRU4Rec protocol).
  The events need ``session_id`` (``assign_sessions``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def known(self) -> pd.DataFrame:
        """Train + validation, time-sorted (stable): what is known before test. Histories read the
        last rows of a user, so the frame must be in time order (a random split's parts are not
        when merely concatenated)."""
        both = pd.concat([self.train, self.val], ignore_index=True)
        return both.sort_values("timestamp", kind="stable").reset_index(drop=True)


def time_split(events: pd.DataFrame, val_fraction: float = 0.1, test_fraction: float = 0.1) -> Splits:
    """Cuts at time quantiles; events sharing a timestamp never straddle a cut.

    events must be sorted by timestamp (validated logs are).
    """
    times = events["timestamp"].to_numpy()
    if np.any(np.diff(times) < 0):
        raise ValueError("time_split: events must be sorted by timestamp")
    n = len(events)
    val_start = _cut(times, int(round(n * (1.0 - val_fraction - test_fraction))))
    test_start = _cut(times, int(round(n * (1.0 - test_fraction))))
    return _slice(events, val_start, test_start)


def random_split(events: pd.DataFrame, val_fraction: float = 0.0, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Shuffles under ``seed`` and cuts; each part is re-sorted by time."""
    order = np.random.default_rng(seed).permutation(len(events))
    n = len(events)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    parts = [np.sort(order[n_test + n_val:]), np.sort(order[n_test:n_test + n_val]), np.sort(order[:n_test])]
    train, val, test = (events.iloc[p].reset_index(drop=True) for p in parts)
    return Splits(train, val, test)


def leave_last_out_split(events: pd.DataFrame, use_val: bool = True, seed: int = 0) -> Splits:
    """Per user: the last event is test, the one before it validation (when ``use_val``), the rest
    train. Users with fewer than 3 events (2 without validation) keep everything in train, so
    every test user has training history. Events of one user sharing a timestamp are ordered
    at random under ``seed`` (a log's order within a second is an artifact: MovieLens sorts a
    rating session by id, which would make the test item the largest id of the last second).

    events must be sorted by timestamp (validated logs are).
    """
    times = events["timestamp"].to_numpy()
    if np.any(np.diff(times) < 0):
        raise ValueError("leave_last_out_split: events must be sorted by timestamp")
    users = pd.factorize(events["user_id"])[0]
    order = np.lexsort((np.random.default_rng(seed).random(len(events)), times, users))  # by user, time, random
    from_end = np.empty(len(events), dtype=np.int64)
    from_end[order] = pd.Series(users[order]).groupby(users[order]).cumcount(ascending=False).to_numpy()  # 0 = last
    size = np.bincount(users)[users]
    held = 2 if use_val else 1
    eligible = size >= held + 1
    test = eligible & (from_end == 0)
    val = eligible & (from_end == 1) & use_val
    train = ~(test | val)
    return Splits(*(events[m].reset_index(drop=True) for m in (train, val, test)))


SPLITS = ("time", "random", "leave_last_out", "session")


def split(events: pd.DataFrame, method: str, val_fraction: float, test_fraction: float, seed: int = 0,
          session_test_days: float = 7.0, session_val_days: float = 7.0, report: Optional[dict] = None) -> Splits:
    """``method`` is one of ``SPLITS``; leave_last_out ignores the fractions (val if ``val_fraction`` > 0);
    session ignores them for the days, and ``report`` (optional) receives what it dropped
    (``session_split``)."""
    if method == "time":
        splits = time_split(events, val_fraction, test_fraction)
    elif method == "random":
        splits = random_split(events, val_fraction, test_fraction, seed)
    elif method == "leave_last_out":
        splits = leave_last_out_split(events, use_val=val_fraction > 0, seed=seed)
    elif method == "session":
        from tfrs_app.data.sessions import session_split  # it imports Splits from here

        splits = session_split(events, session_test_days, session_val_days, report)
    else:
        raise ValueError(f"data.split: must be one of {list(SPLITS)}, got {method!r}")
    if len(splits.train) == 0 or len(splits.test) == 0:
        raise ValueError(f"data.split: the {method} split left an empty train or test set {splits.sizes()}; "
                         "use more data or other fractions")
    return splits


def _cut(times: np.ndarray, position: int) -> int:
    """``position`` moved back to the first event sharing its timestamp (ties stay together, on the later side)."""
    position = min(max(position, 0), len(times))
    if position in (0, len(times)):
        return position
    return int(np.searchsorted(times, times[position], side="left"))


def _slice(events: pd.DataFrame, val_start: int, test_start: int) -> Splits:
    return Splits(
        events.iloc[:val_start].reset_index(drop=True),
        events.iloc[val_start:test_start].reset_index(drop=True),
        events.iloc[test_start:].reset_index(drop=True),
    )
