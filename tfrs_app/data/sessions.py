"""Sessions of an interaction log: cut, described, laid out for GRU4Rec, and split by time.

A session is a run of one user's events with no long pause, the unit of session-based
recommendation (Hidasi et al. 2016, "Session-based recommendations with recurrent neural
networks"): the model reads the session so far and predicts its next item.

- ``assign_sessions``: the ``session_id`` and ``session_position`` columns, from a given
  ``session_id`` column or by cutting each user's events at gaps of more than ``gap_minutes``.
- ``session_stats``: counts and the length distribution (``data/report.json`` of a run).
- ``session_sequences``: the offset layout of GRU4Rec's session-parallel mini-batches.
- ``session_split``: whole sessions in train / validation / test by where they start in time,
  validation and test cleaned as in the GRU4Rec papers.

numpy and pandas only: every step is a sort or a group-by over all events, no loop over them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from tfrs_app.data.splits import Splits

DAY = 86_400
# Lower bounds and labels of the session length histogram.
LENGTH_BUCKETS = ((1, "1"), (2, "2"), (3, "3-5"), (6, "6-10"), (11, "11-20"), (21, "21-50"), (51, ">50"))


def assign_sessions(events: pd.DataFrame, gap_minutes: float, seed: int = 0) -> pd.DataFrame:
    """A copy of ``events`` (rows in the given order) with a ``session_id`` str column and a
    ``session_position`` int64 column, the 0-based order of each event within its session.

    Without a ``session_id`` column, a user's event starts a new session when it comes more
    than ``gap_minutes`` after that user's previous event; the k-th session (0-based, in time
    order) of user ``u`` is ``f"{u}#{k}"``, unique because k holds no ``#``.

    A given ``session_id`` column is used as given, but sessions are still per user: the same
    id under two users is two sessions. Ids that each belong to one user are kept as written;
    when some id is shared by several users, every id becomes ``f"{user_id}#{session_id}"``
    so that downstream a session_id names one session (ValueError if ids holding ``#`` still
    collide then).

    Events of one session that share a timestamp are ordered at random under ``seed``: a
    log's order within one second is an artifact (MovieLens sorts a rating session's seconds
    by item id), which would otherwise teach a sequence model to predict larger ids next.
    """
    if not np.isfinite(gap_minutes) or gap_minutes <= 0:
        raise ValueError(f"assign_sessions: gap_minutes must be > 0, got {gap_minutes!r}")
    _require(events, ("user_id", "timestamp"), "assign_sessions: events")
    if len(events) == 0:
        raise ValueError("assign_sessions: events is empty (0 rows)")
    users = events["user_id"].astype(str).to_numpy(dtype=object)
    user_codes = pd.factorize(users)[0]
    times = events["timestamp"].to_numpy(dtype=np.int64)
    tiebreak = np.random.default_rng(seed).random(len(events))
    if "session_id" in events.columns:
        ids, codes = _given_sessions(events["session_id"], users, user_codes)
        order = np.lexsort((tiebreak, times, codes))
    else:
        order = np.lexsort((tiebreak, times, user_codes))  # by user, time, random
        ids, codes = _cut_sessions(users, user_codes, times, order, gap_minutes * 60.0)
    out = events.copy()
    out["session_id"] = ids
    out["session_position"] = _positions(codes, order)
    return out


def session_stats(events: pd.DataFrame) -> dict:
    """Counts and length distribution of the sessions of ``events`` (which has ``session_id``,
    each id one session, as ``assign_sessions`` writes it). Plain ints and floats (JSON-able):
    sessions, events, mean / median / p90 (numpy's linear interpolation) / max length, the
    share of single-event sessions (which a next-item model cannot learn from), and
    ``length_histogram``: sessions per length bucket 1, 2, 3-5, 6-10, 11-20, 21-50, >50."""
    _require(events, ("session_id",), "session_stats: events")
    if len(events) == 0:
        raise ValueError("session_stats: events is empty (0 rows)")
    lengths = np.bincount(pd.factorize(events["session_id"])[0])
    bounds = np.array([low for low, _ in LENGTH_BUCKETS])
    counts = np.bincount(np.searchsorted(bounds, lengths, side="right") - 1, minlength=len(bounds))
    return {
        "sessions": int(lengths.size),
        "events": int(lengths.sum()),
        "mean_length": float(lengths.mean()),
        "median_length": float(np.median(lengths)),
        "p90_length": float(np.percentile(lengths, 90)),
        "max_length": int(lengths.max()),
        "single_event_share": float(np.mean(lengths == 1)),
        "length_histogram": {label: int(n) for (_, label), n in zip(LENGTH_BUCKETS, counts)},
    }


def session_sequences(frame: pd.DataFrame, item_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sessions of ``frame`` in GRU4Rec's offset layout: (offsets int64 [S + 1], items
    int64 [N], session_ids object [S]). Session s is ``items[offsets[s]:offsets[s + 1]]`` in
    ``session_position`` order; sessions are ordered by their first timestamp (ties by id), the
    order in which the session-parallel batcher starts them.

    frame: ``session_id``, ``session_position`` and ``timestamp`` columns (N rows);
    item_rows: [N] non-negative ints, each row's item as a row of the item table.
    """
    _require(frame, ("session_id", "session_position", "timestamp"), "session_sequences: frame")
    item_rows = np.asarray(item_rows)
    if item_rows.shape != (len(frame),) or not (np.issubdtype(item_rows.dtype, np.integer) or item_rows.size == 0):
        raise ValueError(f"session_sequences: item_rows must be [{len(frame)}] integers (one per row of frame), "
                         f"got shape {item_rows.shape} of {item_rows.dtype}")
    if item_rows.size and item_rows.min() < 0:
        row = int(np.flatnonzero(item_rows < 0)[0])
        raise ValueError(f"session_sequences: item_rows must be >= 0, got {int(item_rows[row])} at row {row}")
    codes, ids = pd.factorize(frame["session_id"])
    ids = np.asarray(ids, dtype=object)
    first = pd.Series(frame["timestamp"].to_numpy(dtype=np.int64)).groupby(codes).min().to_numpy()
    by_start = _by_start(first, ids)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[by_start] = np.arange(len(ids))
    session_rank = rank[codes]
    order = np.lexsort((frame["session_position"].to_numpy(), session_rank))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(session_rank, minlength=len(ids)))]).astype(np.int64)
    return offsets, item_rows[order].astype(np.int64), ids[by_start]


def _by_start(first: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """[S] session order by first timestamp, ties by id. Only the tied ids are sorted as text
    (sorting a million ids takes seconds; few sessions share a start second)."""
    _, inverse, counts = np.unique(first, return_inverse=True, return_counts=True)
    tied = counts[inverse] > 1
    id_rank = np.zeros(len(ids), dtype=np.int64)
    id_rank[tied] = np.argsort(np.argsort(ids[tied].astype(str), kind="stable"), kind="stable")
    return np.lexsort((id_rank, first))


def session_split(events: pd.DataFrame, test_days: float, val_days: float, report: Optional[dict] = None) -> Splits:
    """Whole sessions by where they end, as GRU4Rec's preprocessing does: test = sessions ending
    at or after (last timestamp - ``test_days``), validation = those ending in the ``val_days``
    before, train the rest. A session is never cut, and no training event comes after the
    validation window opens (a held-out session may have begun before its window).

    Validation and test are cleaned as in the GRU4Rec papers (Hidasi et al. 2016): events of
    items that do not occur in train are dropped (no model can score an item it never saw),
    then sessions left with fewer than 2 events (nothing to predict); ``session_position`` is
    renumbered 0..n-1 in what remains. ``report`` (optional) receives the cut times and, per
    part, sessions and events kept, and for validation and test the events of unseen items
    and the short sessions (and their events) dropped.

    events: ``session_id`` and ``session_position`` (from ``assign_sessions``), ``item_id``,
    ``timestamp``. Parts keep the order of ``events``. ValueError naming the argument for bad
    days, and for an empty train or test part or, when ``val_days`` > 0, validation part.
    """
    _require(events, ("session_id", "session_position", "item_id", "timestamp"), "session_split: events",
             " (assign_sessions adds session_id and session_position)")
    if not np.isfinite(test_days) or test_days <= 0:
        raise ValueError(f"session_split: test_days must be > 0, got {test_days!r}")
    if not np.isfinite(val_days) or val_days < 0:
        raise ValueError(f"session_split: val_days must be >= 0, got {val_days!r}")
    if len(events) == 0:
        raise ValueError("session_split: events is empty (0 rows)")
    codes = pd.factorize(events["session_id"])[0]
    times = events["timestamp"].to_numpy(dtype=np.int64)
    end = pd.Series(times).groupby(codes).max().to_numpy()[codes]  # [N] the end of each event's session
    test_start = float(times.max()) - test_days * DAY
    val_start = test_start - val_days * DAY
    train = events[end < val_start].reset_index(drop=True)
    if len(train) == 0:
        raise ValueError(f"session_split: no session ends before the validation and test windows "
                         f"(test_days={test_days}, val_days={val_days} reach back to the log's start); use fewer days")
    seen = set(train["item_id"].unique())
    out = {"test_start": test_start, "val_start": val_start,
           "train": {"sessions": int(train["session_id"].nunique()), "events": len(train)}}
    val, out["val"] = _held_out(events[(end >= val_start) & (end < test_start)], seen)
    test, out["test"] = _held_out(events[end >= test_start], seen)
    if len(test) == 0:
        raise ValueError(f"session_split: no test session is left (test_days={test_days}: "
                         f"{out['test']['short_sessions_dropped']} sessions dropped as shorter than 2 events once "
                         "items unseen in train were removed); use more test_days")
    if val_days > 0 and len(val) == 0:
        raise ValueError(f"session_split: no validation session is left (val_days={val_days}); use more val_days, "
                         "or val_days=0 for no validation part")
    if report is not None:
        report.update(out)
    return Splits(train, val, test)


def _held_out(part: pd.DataFrame, seen: set) -> tuple[pd.DataFrame, dict]:
    """``part`` without events of items outside ``seen``, then without sessions shorter than 2,
    positions renumbered; and the counts of what was kept and dropped."""
    known = part["item_id"].isin(seen).to_numpy()
    kept = part[known]
    codes = pd.factorize(kept["session_id"])[0]
    long_enough = (np.bincount(codes) >= 2)[codes]
    cleaned = kept[long_enough].reset_index(drop=True)
    codes = codes[long_enough]
    cleaned["session_position"] = _positions(codes, np.lexsort((cleaned["session_position"].to_numpy(), codes)))
    sessions = int(len(np.unique(codes)))
    return cleaned, {"sessions": sessions, "events": len(cleaned),
                     "unseen_item_events_dropped": int((~known).sum()),
                     "short_sessions_dropped": int(kept["session_id"].nunique()) - sessions,
                     "short_session_events_dropped": int((~long_enough).sum())}


def _given_sessions(given: pd.Series, users: np.ndarray, user_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(session_id [N] object, session code [N]) for a given column: one code per (user, id)."""
    if given.isna().any():
        row = int(np.flatnonzero(given.isna().to_numpy())[0])
        raise ValueError(f"assign_sessions: column 'session_id' has {int(given.isna().sum())} null values "
                         f"(first at row {row})")
    ids = given.astype(str).to_numpy(dtype=object)
    id_codes = pd.factorize(ids)[0]
    codes = pd.factorize(user_codes.astype(np.int64) * (int(id_codes.max()) + 1) + id_codes)[0]
    if codes.max() == id_codes.max():  # every id under one user
        return ids, codes
    ids = users + "#" + ids
    if pd.unique(ids).size != codes.max() + 1:
        raise ValueError("assign_sessions: column 'session_id' repeats ids under several users, and "
                         "f'{user_id}#{session_id}' does not tell those sessions apart (ids hold '#'); "
                         "make the ids unique")
    return ids, codes


def _cut_sessions(users: np.ndarray, user_codes: np.ndarray, times: np.ndarray, order: np.ndarray,
                  gap_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(session_id [N] object, session code [N]) by gaps: in ``order`` (by user then time) an
    event starts a session at a new user or more than ``gap_seconds`` after the previous one."""
    user, time = user_codes[order], times[order]
    new_user = np.r_[True, user[1:] != user[:-1]]
    new_session = new_user | np.r_[True, np.diff(time) > gap_seconds]
    session = np.cumsum(new_session) - 1  # [N] in order: the global session number
    first_of_user = session[new_user][np.cumsum(new_user) - 1]
    k = (session - first_of_user)[new_session]  # [S] the session's number within its user
    names = users[order][new_session] + "#" + k.astype(str).astype(object)
    codes = np.empty(len(order), dtype=np.int64)
    codes[order] = session
    return names[codes], codes


def _positions(codes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """[N] int64: each event's 0-based rank within its code, in ``order`` (an argsort that
    groups equal codes together)."""
    grouped = codes[order]
    index = np.arange(len(grouped))
    starts = np.ones(len(grouped), dtype=bool)
    starts[1:] = grouped[1:] != grouped[:-1]
    first = np.maximum.accumulate(np.where(starts, index, 0))
    positions = np.empty(len(grouped), dtype=np.int64)
    positions[order] = index - first
    return positions


def _require(frame: pd.DataFrame, columns: tuple[str, ...], where: str, hint: str = "") -> None:
    """ValueError naming the first of ``columns`` missing from ``frame``; ``where`` names the argument."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{where} has no {missing[0]!r} column{hint} (columns: {list(frame.columns)})")
