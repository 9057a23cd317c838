import json

import numpy as np
import pandas as pd
import pytest

from tfrs_app.config import SequentialSyntheticConfig, load_config
from tfrs_app.data.schema import SchemaError, validate_interactions
from tfrs_app.data.sessions import assign_sessions, session_sequences, session_split, session_stats
from tfrs_app.data.splits import split
from tfrs_app.sequences.synthetic import generate_sequential

DAY = 86_400


def log(users, times, items=None, **columns):
    items = items if items is not None else [f"i{n}" for n in range(len(users))]
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.array(times, dtype=np.int64), **columns})


def test_a_gap_of_more_than_30_minutes_starts_a_session():
    # a: 29:59 later (same), 30:01 later (new), exactly 30:00 later (same); b: 30:01 (new), 29:59 (same)
    f = log(["a", "b", "a", "b", "a", "b", "a"], [0, 100, 1799, 1901, 3600, 3700, 5400])
    out = assign_sessions(f, gap_minutes=30)
    assert list(out["session_id"]) == ["a#0", "b#0", "a#0", "b#1", "a#1", "b#1", "a#1"]
    assert list(out["session_position"]) == [0, 0, 1, 0, 0, 1, 1]
    assert out["session_position"].dtype == np.int64
    assert list(out["item_id"]) == list(f["item_id"]) and "session_id" not in f.columns  # a copy, rows as given


def test_a_given_session_id_is_used_per_user():
    # ids unique to one user: kept as written, and gaps do not cut them (x spans two hours)
    f = log(["a", "a", "b", "a"], [0, 2 * 3600, 10, 3 * 3600], session_id=["x", "x", "z", "y"])
    out = assign_sessions(f, gap_minutes=30)
    assert list(out["session_id"]) == ["x", "x", "z", "y"]
    assert list(out["session_position"]) == [0, 1, 0, 0]
    # the same id under two users is two sessions: then every id carries its user
    shared = log(["a", "b", "a", "b", "a"], [0, 1, 2, 3, 4], session_id=["x", "x", "y", "x", "x"])
    out = assign_sessions(shared, gap_minutes=30)
    assert list(out["session_id"]) == ["a#x", "b#x", "a#y", "b#x", "a#x"]
    assert list(out["session_position"]) == [0, 0, 0, 1, 1]


def test_events_of_one_second_are_ordered_at_random_under_the_seed():
    f = log(["a"] * 5, [0, 9, 9, 9, 9], items=["first", "p", "q", "r", "s"])
    positions = [tuple(assign_sessions(f, 30, seed=s)["session_position"]) for s in range(12)]
    assert all(p[0] == 0 and sorted(p[1:]) == [1, 2, 3, 4] for p in positions)  # the earlier second stays first
    assert len(set(positions)) > 1  # not the log's order every time
    assert assign_sessions(f, 30, seed=5).equals(assign_sessions(f, 30, seed=5))


@pytest.mark.parametrize("gap", [0, -5.0, float("nan")])
def test_a_bad_gap_is_refused_by_name(gap):
    with pytest.raises(ValueError, match="gap_minutes"):
        assign_sessions(log(["a"], [0]), gap)


def test_assign_sessions_names_a_missing_column():
    with pytest.raises(ValueError, match="'user_id'"):
        assign_sessions(pd.DataFrame({"timestamp": [0]}), 30)


def test_schema_keeps_a_session_id_column():
    out = validate_interactions(log(["a", "b", "a"], [30, 10, 20], session_id=[7, 8, 7])).events
    assert list(out["session_id"]) == ["8", "7", "7"]  # strings, in the sorted rows' order
    assert "session_id" not in validate_interactions(log(["a"], [1])).events.columns


@pytest.mark.parametrize("value", ["", " ", None, np.nan])
def test_schema_refuses_an_empty_session_id_by_name(value):
    with pytest.raises(SchemaError, match="'session_id'"):
        validate_interactions(log(["a", "b"], [1, 2], session_id=["s1", value]))


def test_session_stats_on_a_hand_log():
    lengths = [1, 2, 3, 6, 1, 51]
    ids = np.repeat([f"s{n}" for n in range(len(lengths))], lengths)
    stats = session_stats(pd.DataFrame({"session_id": ids}))
    assert stats == {
        "sessions": 6, "events": 64, "mean_length": pytest.approx(64 / 6), "median_length": 2.5,
        "p90_length": pytest.approx(28.5),  # sorted 1 1 2 3 6 51: 6 + 0.5 * (51 - 6)
        "max_length": 51, "single_event_share": pytest.approx(2 / 6),
        "length_histogram": {"1": 2, "2": 1, "3-5": 1, "6-10": 1, "11-20": 0, "21-50": 0, ">50": 1},
    }
    json.dumps(stats)  # plain types
    with pytest.raises(ValueError, match="empty"):
        session_stats(pd.DataFrame({"session_id": []}))


def test_session_sequences_offsets_and_items():
    frame = pd.DataFrame({"session_id": ["b", "c", "a", "c", "b", "c"], "session_position": [1, 0, 0, 2, 0, 1],
                          "timestamp": [20, 5, 10, 30, 10, 6]})
    offsets, items, ids = session_sequences(frame, np.array([7, 1, 4, 3, 6, 2]))
    assert list(ids) == ["c", "a", "b"]  # by first timestamp (c 5, a 10, b 10), the tie by id
    assert list(offsets) == [0, 3, 4, 6]
    assert list(items) == [1, 2, 3, 4, 6, 7]  # c: 1 2 3, a: 4, b: 6 7 (by position)
    assert offsets.dtype == items.dtype == np.int64
    empty = session_sequences(frame.iloc[:0], np.zeros(0, dtype=np.int64))
    assert list(empty[0]) == [0] and empty[1].size == 0 and empty[2].size == 0
    with pytest.raises(ValueError, match="item_rows"):
        session_sequences(frame, np.array([1, 2, 3]))


def split_log():
    """Last event at day 30: test from day 23, validation from day 16. Train items: A B C D."""
    sessions = [  # (session, user, start day, items)
        ("s1", "u1", 1.0, "ABC"), ("s2", "u2", 10.0, "BD"),
        ("s3", "u1", 15.9, "AC"),  # starts before day 16 but ends at day 16.1: validation (by its end)
        ("s4", "u3", 17.0, "AB"), ("s5", "u2", 20.0, "CED"),  # E unseen in train
        ("s6", "u1", 23.0, "BCA"),  # starts exactly at the test cut
        ("s7", "u3", 25.0, "DZ"),  # Z unseen: one event left, dropped
        ("s8", "u2", 29.999, "AB"),
    ]
    rows = []
    for session, user, day, items in sessions:
        step = 0.2 * DAY if session == "s3" else 60
        rows += [(user, item, int(day * DAY + n * step), session) for n, item in enumerate(items)]
    rows[-1] = rows[-1][:2] + (30 * DAY, "s8")
    users, items, times, ids = zip(*rows)
    f = log(list(users), list(times), items=list(items), session_id=list(ids))
    return assign_sessions(f.sort_values("timestamp", kind="stable").reset_index(drop=True), 30)


def test_session_split_by_where_sessions_end():
    report = {}
    s = session_split(split_log(), test_days=7, val_days=7, report=report)
    assert sorted(s.train["session_id"].unique()) == ["s1", "s2"]
    assert s.train["timestamp"].max() < 16 * DAY  # nothing in train after validation opens
    assert sorted(s.val["session_id"].unique()) == ["s3", "s4", "s5"]
    assert sorted(s.test["session_id"].unique()) == ["s6", "s8"]  # s7 dropped
    s5 = s.val[s.val["session_id"] == "s5"]
    assert list(s5["item_id"]) == ["C", "D"] and list(s5["session_position"]) == [0, 1]  # E dropped, renumbered
    assert report["val"] == {"sessions": 3, "events": 6, "unseen_item_events_dropped": 1,
                             "short_sessions_dropped": 0, "short_session_events_dropped": 0}
    assert report["test"] == {"sessions": 2, "events": 5, "unseen_item_events_dropped": 1,
                              "short_sessions_dropped": 1, "short_session_events_dropped": 1}
    assert report["train"] == {"sessions": 2, "events": 5}
    assert report["test_start"] == 23 * DAY and report["val_start"] == 16 * DAY
    via_split = split(split_log(), "session", 0.1, 0.1, session_test_days=7, session_val_days=7)
    pd.testing.assert_frame_equal(via_split.test, s.test)
    assert len(session_split(split_log(), 7, 0).val) == 0  # val_days=0: no validation part
    assert sorted(session_split(split_log(), 7, 0).train["session_id"].unique()) == ["s1", "s2", "s3", "s4", "s5"]


def test_session_split_refuses_bad_input_by_name():
    events = split_log()
    with pytest.raises(ValueError, match="'session_id'"):
        session_split(events.drop(columns="session_id"), 7, 7)
    with pytest.raises(ValueError, match="test_days"):
        session_split(events, 0, 7)
    with pytest.raises(ValueError, match="val_days"):
        session_split(events, 7, -1)
    with pytest.raises(ValueError, match="no session ends before"):
        session_split(events, 20, 20)  # reaches back to day -10
    with pytest.raises(ValueError, match="val_days"):
        session_split(events, 7, 0.5)  # days 22.5-23 hold no session


@pytest.fixture(scope="module")
def sequential():
    return generate_sequential(SequentialSyntheticConfig())


def test_generator_is_deterministic_under_its_seed():
    small = SequentialSyntheticConfig(num_users=50, num_items=60, num_clusters=5)
    a, b = generate_sequential(small), generate_sequential(small)
    pd.testing.assert_frame_equal(a.interactions.events, b.interactions.events)
    np.testing.assert_array_equal(a.truth.event_cluster, b.truth.event_cluster)
    other = generate_sequential(SequentialSyntheticConfig(num_users=50, num_items=60, num_clusters=5, seed=1))
    assert not other.interactions.events["item_id"].equals(a.interactions.events["item_id"])


def test_generator_sessions_and_planted_chain(sequential):
    events, truth, cfg = sequential.interactions.events, sequential.truth, SequentialSyntheticConfig()
    ordered = events.sort_values(["session_id", "timestamp"], kind="stable")
    assert ordered.groupby("session_id").size().min() >= 2
    assert not ordered.duplicated(["session_id", "item_id"]).any()
    assert not ordered.duplicated(["session_id", "timestamp"]).any()  # >= 1 s apart: no ties
    rows = events["item_id"].str[1:].astype(int).to_numpy()
    np.testing.assert_array_equal(truth.item_cluster[rows], truth.event_cluster)  # each item from its cluster
    assert (events["item_genres"] == "Cluster" + pd.Series(truth.event_cluster).astype(str)).all()
    assert not events["item_title"].str.contains("Cluster").any()
    assert (truth.successors != np.arange(cfg.num_clusters)[:, None]).all()
    np.testing.assert_allclose(truth.transition.sum(axis=1), 1.0)
    cluster = truth.event_cluster[ordered.index.to_numpy()]
    same = ordered["session_id"].to_numpy()[1:] == ordered["session_id"].to_numpy()[:-1]
    before, after = cluster[:-1][same], cluster[1:][same]
    share = (truth.successors[before] == after[:, None]).any(axis=1).mean()
    expected = cfg.transition_strength + (1 - cfg.transition_strength) * cfg.successors / cfg.num_clusters
    assert abs(share - expected) < 0.03  # 0.862 planted; without the chain it would be 2 / 25
    assert (events["engagement"] == 1).all()


def test_prepare_data_writes_sessions_and_their_report(tmp_path):
    from tfrs_app.data.prepare import prepare_data

    cfg = load_config(None, [f"run_dir={tmp_path}", "data.synthetic.num_users=150", "data.synthetic.num_items=200",
                             "data.synthetic.mean_interactions_per_user=8"])
    data = prepare_data(cfg)
    train = pd.read_parquet(tmp_path / "data" / "train.parquet")
    assert {"session_id", "session_position"} <= set(train.columns)
    assert train["session_position"].dtype == np.int64
    assert train["session_id"].str.match(r"^u\d+#\d+$").all()
    report = json.loads((tmp_path / "data" / "report.json").read_text())
    parts = pd.concat([data.splits.train, data.splits.val, data.splits.test])
    assert report["sessions"]["events"] == len(parts)
    assert report["sessions"]["sessions"] == parts["session_id"].nunique()
    assert "session_split" not in report  # a time split drops nothing
    # data prepared before sessions (same stamp, no session columns) is prepared again, to the same split
    train.drop(columns=["session_id", "session_position"]).to_parquet(tmp_path / "data" / "train.parquet")
    (tmp_path / "retrieval" / "checkpoint").mkdir(parents=True)
    again = prepare_data(cfg).splits.train
    pd.testing.assert_frame_equal(again, train)


def test_prepare_data_with_a_session_split_of_the_sequential_source(tmp_path):
    from tfrs_app.data.prepare import prepare_data

    cfg = load_config(None, [f"run_dir={tmp_path}", "data.source=synthetic_sequential", "data.split=session",
                             "data.sequential.num_users=300", "data.sequential.num_items=120",
                             "data.sequential.num_clusters=6", "data.sequential.days=30"])
    splits = prepare_data(cfg).splits
    last = max(part["timestamp"].max() for part in (splits.train, splits.val, splits.test))
    starts = {name: part.groupby("session_id")["timestamp"].min()
              for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test))}
    assert (starts["test"] >= last - 7 * DAY).all()
    assert ((starts["val"] >= last - 14 * DAY) & (starts["val"] < last - 7 * DAY)).all()
    assert (starts["train"] < last - 14 * DAY).all()
    for part in (splits.val, splits.test):
        assert part.groupby("session_id").size().min() >= 2
        assert set(part["item_id"]) <= set(splits.train["item_id"])
    report = json.loads((tmp_path / "data" / "report.json").read_text())
    assert report["session_split"]["test"]["sessions"] == len(starts["test"])
    assert report["sessions"]["single_event_share"] == 0.0  # every generated session has >= 2 events
