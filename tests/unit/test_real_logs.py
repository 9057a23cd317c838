"""Real logs through the CSV/Parquet path: delimiters, encodings, timestamp units and formats,
mappings, ids, duplicates, labels from ratings, stale inputs, sizes (issue: real logs in)."""
import os

import numpy as np
import pandas as pd
import pytest

from tfrs_app.config import ConfigError, load_config
from tfrs_app.data.schema import ReadOptions, SchemaError, validate_interactions
from tfrs_app.data.tabular import load_tabular, sniff_delimiter

MAPPING = {"user_id": "uid", "item_id": "sku", "timestamp": "ts"}


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_log_without_item_text_gets_it_from_the_items_table(tmp_path):
    log = write(tmp_path / "log.csv", "uid,sku,ts\nu1,a,10\nu2,b,20\n")
    items = write(tmp_path / "items.csv", "sku,name\na,Alpha\nb,Beta\nc,Gamma\n")
    out = load_tabular(log, {**MAPPING, "item_title": "name"}, items_path=items)
    assert list(out.events["item_title"]) == ["Alpha", "Beta"]  # was KeyError: 'item_title'
    assert list(out.events["item_genres"]) == ["", ""]
    assert list(out.items["item_id"]) == ["a", "b", "c"]
    bare = load_tabular(log, MAPPING)  # no items file, no text columns: empty text, still trains
    assert list(bare.events["item_title"]) == ["", ""]


@pytest.mark.parametrize("sep", [",", "\t", ";", "|"])
def test_delimiter_is_sniffed_and_reported(tmp_path, sep):
    log = write(tmp_path / "log.txt", sep.join(["uid", "sku", "ts", "title"]) + "\n"
                + "\n".join(sep.join([f"u{i}", f"i{i}", str(100 + i), "\"A, B; C | D\""]) for i in range(5)) + "\n")
    report = {}
    out = load_tabular(log, MAPPING, report=report)
    assert report["file"]["delimiter"] == sep and report["file"]["delimiter_detected"]
    assert list(out.events["user_id"])[:2] == ["u0", "u1"]


def test_sniffer_prefers_consistent_field_counts():
    assert sniff_delimiter("a\tb\tc\n1\t2,5\t3\n") == "\t"
    assert sniff_delimiter("a,b\n1,2\n") == ","
    assert sniff_delimiter("only\n1\n") == ","


def test_bad_byte_names_file_line_and_column(tmp_path):
    log = write(tmp_path / "log.csv", b"uid,sku,ts,name\nu1,a,10,ok\nu2,b,20,caf\xe9\n")
    with pytest.raises(SchemaError) as error:
        load_tabular(log, MAPPING)
    message = str(error.value)
    assert "log.csv" in message and "0xe9" in message and "line 3" in message and "'name'" in message
    assert "data.encoding" in message
    out = load_tabular(log, MAPPING, encoding="latin-1")
    assert len(out.events) == 2


@pytest.mark.parametrize("unit, scale", [("s", 1), ("ms", 1000), ("us", 10**6), ("ns", 10**9)])
def test_timestamp_units_are_detected_by_magnitude(unit, scale):
    report = {}
    frame = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [1_600_000_000 * scale, 1_600_000_100 * scale]})
    out = validate_interactions(frame, report=report)
    assert list(out.events["timestamp"]) == [1_600_000_000, 1_600_000_100]
    assert report["timestamp_unit"] == unit


def test_timestamp_mixtures_and_out_of_range_are_refused():
    base = {"user_id": ["a", "b", "c"], "item_id": ["x", "y", "z"]}
    with pytest.raises(SchemaError, match="mixes timestamp units: seconds \\(row 0.*milliseconds \\(row 2"):
        validate_interactions(pd.DataFrame({**base, "timestamp": [1_600_000_000, 1_600_000_001, 1_600_000_002_000]}))
    with pytest.raises(SchemaError, match="after the year 2300 read as seconds; set data.timestamp_unit"):
        validate_interactions(pd.DataFrame({**base, "timestamp": [1_600_000_000_000] * 3}),
                              options=ReadOptions(timestamp_unit="s"))
    with pytest.raises(SchemaError, match="negative timestamp -5 at row 1"):
        validate_interactions(pd.DataFrame({**base, "timestamp": [1, -5, 3]}))
    with pytest.raises(SchemaError, match="outside 1970-2300"):
        validate_interactions(pd.DataFrame({**base, "timestamp": ["1969-01-01", "2020-01-01", "2020-01-02"]}))


def test_one_bad_string_in_an_epoch_column_names_its_row(tmp_path):
    log = write(tmp_path / "log.csv", "uid,sku,ts\n" + "".join(f"u{i},i{i},{1_600_000_000 + i}\n" for i in range(6))
                + "u9,i9,oops\nu8,i8,1600000100\n")
    with pytest.raises(SchemaError, match="holds epoch numbers, but 'oops' at row 6 is not a number"):
        load_tabular(log, MAPPING)


def test_day_first_dates_are_not_read_month_first():
    frame = pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["x", "y", "z"],
                          "timestamp": ["01/02/2020", "27/03/2020", "05/04/2020"]})
    out = validate_interactions(frame)
    days = pd.to_datetime(out.events["timestamp"], unit="s").dt.strftime("%Y-%m-%d").tolist()
    assert days == ["2020-02-01", "2020-03-27", "2020-04-05"]  # pandas alone: 2020-01-02 and 2020-05-04
    ambiguous = frame.assign(timestamp=["01/02/2020", "03/04/2020", "05/06/2020"])
    with pytest.raises(SchemaError, match="ambiguous; set data.timestamp_format"):
        validate_interactions(ambiguous)
    out = validate_interactions(ambiguous, options=ReadOptions(timestamp_format="%m/%d/%Y"))
    assert pd.to_datetime(out.events["timestamp"], unit="s").dt.month.tolist() == [1, 3, 5]
    with pytest.raises(SchemaError, match="mixes date formats \\('01/02/2020' at row 0, '2020-03-27' at row 1\\)"):
        validate_interactions(frame.assign(timestamp=["01/02/2020", "2020-03-27", "05/04/2020"]))
    with pytest.raises(SchemaError, match="unparsable timestamp '2020-13-01' at row 0 for data.timestamp_format"):
        validate_interactions(frame.assign(timestamp=["2020-13-01"] * 3), options=ReadOptions(timestamp_format="%Y-%m-%d"))


def test_mapping_over_a_same_named_column_and_two_fields_on_one_column(tmp_path):
    log = write(tmp_path / "log.csv", "uid,sku,timestamp,time_ms,label\nu1,a,2026-01-01,1600000000000,1\n"
                "u2,b,2026-01-01,1600000100000,0\n")
    report = {}
    out = load_tabular(log, {"user_id": "uid", "item_id": "sku", "timestamp": "time_ms",
                             "satisfaction": "label", "responsibility": "label"}, report=report)
    assert list(out.events["timestamp"]) == [1_600_000_000, 1_600_000_100]
    assert list(out.events["satisfaction"]) == [1.0, 0.0] and list(out.events["responsibility"]) == [1.0, 0.0]
    assert "timestamp" in report["shadowed_columns"]


def test_ids_stay_as_written_unless_id_type_int(tmp_path):
    log = write(tmp_path / "log.csv", "uid,sku,ts\n00001,1,10\n1,1.0,20\n001,01,30\n")
    out = load_tabular(log, MAPPING)
    assert list(out.events["user_id"]) == ["00001", "1", "001"]
    assert sorted(out.items["item_id"]) == ["01", "1", "1.0"]
    as_int = load_tabular(log, MAPPING, options=ReadOptions(id_type="int"))
    assert set(as_int.events["user_id"]) == {"1"} and list(as_int.items["item_id"]) == ["1"]
    bad = write(tmp_path / "bad.csv", "uid,sku,ts\nx7,1,10\n")
    with pytest.raises(SchemaError, match="column 'user_id' holds a non-integer id 'x7' at row 0 \\(data.id_type is int\\)"):
        load_tabular(bad, MAPPING, options=ReadOptions(id_type="int"))


def test_duplicates_are_counted_and_kept_or_dropped():
    frame = pd.DataFrame({"user_id": ["a", "a", "b", "a"], "item_id": ["x", "x", "y", "x"], "timestamp": [5, 5, 6, 5]})
    report = {}
    assert len(validate_interactions(frame, report=report).events) == 4
    assert report["duplicate_rows"] == 2 and report["duplicate_first_row"] == 1
    assert len(validate_interactions(frame, options=ReadOptions(duplicates="drop")).events) == 2


def test_labels_from_rating_follow_the_movielens_mapping():
    frame = pd.DataFrame({"user_id": list("abcd"), "item_id": list("wxyz"), "timestamp": [1, 2, 3, 4],
                          "rating": [5.0, 4.0, 3.5, 1.0]})
    out = validate_interactions(frame, options=ReadOptions(labels_from_rating=True)).events
    assert out["engagement"].tolist() == [1, 1, 1, 1]
    assert out["satisfaction"].tolist() == [1, 1, 0, 0]
    assert out["responsibility"].tolist() == [1, 1, 1, 0]
    strict = validate_interactions(frame, options=ReadOptions(labels_from_rating=True, rating_satisfied=5.0)).events
    assert strict["satisfaction"].tolist() == [1, 0, 0, 0]
    with pytest.raises(SchemaError, match="labels_from_rating needs a 'rating' column"):
        validate_interactions(frame.drop(columns="rating"), options=ReadOptions(labels_from_rating=True))
    with pytest.raises(SchemaError, match="derives 'satisfaction', but the log has that column too"):
        validate_interactions(frame.assign(satisfaction=1), options=ReadOptions(labels_from_rating=True))


def test_problems_mode_collects_every_column():
    frame = pd.DataFrame({"user_id": ["a", None], "item_id": ["x", "y"], "timestamp": [1, "soon"], "rating": [1, "x"]})
    problems = []
    validate_interactions(frame, problems=problems)
    assert len(problems) == 3
    assert any("'user_id' has 1 null" in p for p in problems) and any("'rating' must be numeric" in p for p in problems)


@pytest.mark.parametrize("override, field", [
    ("data.timestamp_unit=hours", "data.timestamp_unit"), ("data.id_type=uuid", "data.id_type"),
    ("data.duplicates=merge", "data.duplicates"), ("data.delimiter=';;'", "data.delimiter"),
    ("data.encoding=klingon", "data.encoding"), ("data.timestamp_format=dd/mm", "data.timestamp_format"),
    ("seed=-5", "seed"), ("data.seed=-1", "data.seed"), ("retrieval.eval_ks=[0]", "retrieval.eval_ks"),
])
def test_config_errors_name_the_field(override, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        load_config(None, [override])


def _csv_config(tmp_path, log, **data):
    overrides = [f"run_dir={tmp_path / 'run'}", "data.source=csv", f"data.path={log}",
                 "data.columns={user_id: uid, item_id: sku, timestamp: ts}"]
    return load_config(None, overrides + [f"data.{k}={v}" for k, v in data.items()])


def _log(n_items=150, n_users=40, start=1_600_000_000):
    rng = np.random.default_rng(0)
    rows = [(f"u{rng.integers(n_users)}", f"i{rng.integers(n_items)}", start + 3600 * t) for t in range(1500)]
    return "uid,sku,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows)


def test_replaced_input_file_is_not_served_from_stale_prepared_data(tmp_path):
    from tfrs_app.data.prepare import prepare_data

    log = write(tmp_path / "log.csv", _log())
    cfg = _csv_config(tmp_path, log)
    first = prepare_data(cfg)
    write(tmp_path / "log.csv", _log(n_items=120))  # same path, new content
    os.utime(log, ns=(1, 1))  # even with an old mtime the size and head hash differ
    second = prepare_data(cfg)
    assert set(second.catalog["item_id"]) != set(first.catalog["item_id"])
    (tmp_path / "run" / "retrieval" / "checkpoint").mkdir(parents=True)  # a trained model now pins the data
    write(tmp_path / "log.csv", _log(n_items=130))
    with pytest.raises(ValueError, match="the input file data.path .* changed since retrieval was trained"):
        prepare_data(cfg)


def test_relative_and_absolute_paths_are_one_data_section(tmp_path, monkeypatch):
    from tfrs_app.data.prepare import _difference, _stamp

    write(tmp_path / "log.csv", _log())
    monkeypatch.chdir(tmp_path)
    relative = _csv_config(tmp_path, "log.csv", manual_dir="./zips")
    absolute = _csv_config(tmp_path, tmp_path / "log.csv", manual_dir=tmp_path / "zips")
    assert _stamp(relative, tmp_path / "a.json") == _stamp(absolute, tmp_path / "b.json")


def test_touched_copied_and_legacy_stamps_are_the_same_data(tmp_path):
    import shutil

    import yaml

    from tfrs_app.data.prepare import prepare_data

    log = write(tmp_path / "log.csv", _log())
    cfg = _csv_config(tmp_path, log)
    prepare_data(cfg)
    (tmp_path / "run" / "retrieval" / "checkpoint").mkdir(parents=True)
    os.utime(log, ns=(10**18, 10**18))  # touched: same bytes
    prepare_data(cfg)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(log, moved / "log.csv")  # the same log at another path (a copied project)
    prepare_data(_csv_config(tmp_path, moved / "log.csv"))
    stamp_path = tmp_path / "run" / "data" / "config.yaml"
    legacy = yaml.safe_load(stamp_path.read_text())
    legacy.pop("inputs")
    for key in ("delimiter", "encoding", "timestamp_unit", "id_type", "duplicates", "labels_from_rating"):
        legacy["data"].pop(key)
    stamp_path.write_text(yaml.safe_dump(legacy))  # a run directory from before these keys existed
    prepare_data(cfg)
    assert "inputs" in yaml.safe_load(stamp_path.read_text())  # upgraded in place
    with pytest.raises(ValueError, match="the data section differs \\(data.id_type: 'str' -> 'int'\\) since retrieval"):
        prepare_data(_csv_config(tmp_path, log, id_type="int"))


def test_damaged_features_json_is_prepared_again(tmp_path):
    from tfrs_app.data.prepare import load_data, prepare_data

    cfg = _csv_config(tmp_path, write(tmp_path / "log.csv", _log()))
    prepare_data(cfg)
    (tmp_path / "run" / "retrieval" / "checkpoint").mkdir(parents=True)
    features = tmp_path / "run" / "features.json"
    features.write_text(features.read_text()[:50])  # truncated
    with pytest.raises(ValueError, match="features.json: not valid JSON"):
        load_data(tmp_path / "run")
    assert len(prepare_data(cfg).space.item_ids) > 0  # was: "the data section differs"
    features.unlink()
    assert len(prepare_data(cfg).space.item_ids) > 0


def test_catalog_smaller_than_k_is_refused_before_training(tmp_path):
    from tfrs_app.data.prepare import prepare_data

    cfg = _csv_config(tmp_path, write(tmp_path / "log.csv", _log(n_items=30)))
    with pytest.raises(ConfigError, match="retrieval.eval_ks: the catalog has 30 items, fewer than "
                                          "retrieval.eval_ks=100, index.k=100"):
        prepare_data(cfg)


def test_missing_manual_dir_is_refused_at_once(tmp_path):
    from tfrs_app.data.sources import load_interactions

    cfg = load_config(None, ["data.source=movielens/latest-small", f"data.manual_dir={tmp_path / 'nope'}"])
    with pytest.raises(FileNotFoundError, match="data.manual_dir: no such folder"):
        load_interactions(cfg.data)


def test_rezipped_movielens_archive_says_what_to_do(tmp_path):
    import zipfile

    from tfrs_app.data.movielens import load_movielens

    (tmp_path / "zips").mkdir()
    with zipfile.ZipFile(tmp_path / "zips" / "ml-latest-small.zip", "w") as archive:
        archive.writestr("ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(ValueError, match="not the file tfds expects \\(wrong checksum.*original GroupLens"):
        load_movielens("latest-small", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "zips"))


def test_datetime_columns_of_any_resolution_and_parquet(tmp_path):
    days = pd.to_datetime(["2023-01-01", "2023-06-01"])
    for unit in ("s", "ms", "us", "ns"):
        frame = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": days.astype(f"datetime64[{unit}]")})
        assert list(validate_interactions(frame).events["timestamp"]) == [1672531200, 1685577600], unit
    path = tmp_path / "log.parquet"
    pd.DataFrame({"uid": ["a", "b"], "sku": ["x", "y"], "ts": days.astype("datetime64[us]")}).to_parquet(path)
    assert list(load_tabular(str(path), MAPPING).events["timestamp"]) == [1672531200, 1685577600]


def test_yyyymmdd_integers_are_not_read_as_seconds():
    frame = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [20230101, 20230102]})
    with pytest.raises(SchemaError, match="looks like YYYYMMDD dates .* set data.timestamp_format='%Y%m%d'"):
        validate_interactions(frame)
    out = validate_interactions(frame, options=ReadOptions(timestamp_format="%Y%m%d"))
    assert list(out.events["timestamp"]) == [1672531200, 1672617600]
    assert list(validate_interactions(frame, options=ReadOptions(timestamp_unit="s")).events["timestamp"]) == [20230101, 20230102]


def test_large_integer_ids_stay_distinct():
    big = ["1234567890123456789", "1234567890123456788"]
    frame = pd.DataFrame({"user_id": big, "item_id": ["1", "2"], "timestamp": [1, 2]})
    assert sorted(validate_interactions(frame, options=ReadOptions(id_type="int")).events["user_id"]) == sorted(big)
    ints = frame.assign(user_id=[1234567890123456789, 1234567890123456788])
    assert sorted(validate_interactions(ints).events["user_id"]) == sorted(big)
    with pytest.raises(SchemaError, match="whole numbers up to 2\\*\\*53"):
        validate_interactions(frame.assign(user_id=[1.5e17, 2.0]))


def test_an_items_table_without_titles_keeps_the_logs(tmp_path):
    events = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [1, 2],
                           "item_title": ["Toy Story", "Heat"]})
    out = validate_interactions(events, pd.DataFrame({"item_id": ["x", "y", "z"], "item_genres": ["A", "B", "C"]}))
    assert list(out.events["item_title"]) == ["Toy Story", "Heat"]
    assert list(out.items["item_title"]) == ["Toy Story", "Heat", ""] and list(out.items["item_genres"]) == ["A", "B", "C"]


def test_duplicates_are_rows_as_written_not_after_rounding():
    frame = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "x"], "timestamp": [1_600_000_000_123, 1_600_000_000_456]})
    report = {}
    out = validate_interactions(frame, options=ReadOptions(duplicates="drop"), report=report)
    assert report["duplicate_rows"] == 0 and len(out.events) == 2  # same second, different milliseconds


def test_byte_order_mark_and_na_spelled_ids(tmp_path):
    log = write(tmp_path / "log.csv", b"\xef\xbb\xbfuid,sku,ts,rating\n00001,NA,10,NA\n00002,null,20,4\n")
    out = load_tabular(log, MAPPING)
    assert list(out.events["user_id"]) == ["00001", "00002"]  # the BOM did not hide uid's dtype
    assert list(out.events["item_id"]) == ["NA", "null"]  # ids as written
    assert np.isnan(out.events["rating"].iloc[0])  # other columns keep the usual missing values


def test_a_bad_byte_early_in_a_tsv_names_its_column(tmp_path):
    log = write(tmp_path / "log.tsv", b"uid\tsku\tts\ttitle\nu1\ta\t10\tcaf\xe9 au lait\nu2\tb\t20\tok\n")
    with pytest.raises(SchemaError, match="byte 0xe9 at line 2, data row 0, column 'title', is not valid utf-8;"):
        load_tabular(log, MAPPING)


def test_validate_refuses_a_head_with_one_class_and_suggests_a_working_fix(tmp_path):
    from tfrs_app.data.prepare import check_sizes
    from tfrs_app.data.validate import check_source

    log = write(tmp_path / "log.csv", "uid,sku,ts,stars\n" + "".join(f"u{i % 7},i{i % 13},{1_600_000_000 + i},"
                                                                      f"{4 + i % 2}\n" for i in range(60)))
    cfg = load_config(None, [f"run_dir={tmp_path / 'run'}", "data.source=csv", f"data.path={log}",
                             "data.columns={user_id: uid, item_id: sku, timestamp: ts, rating: stars}",
                             "data.labels_from_rating=true"])
    problems = check_source(cfg).problems
    assert any("ranker head 'satisfaction': labels of one class only (all 1)" in p for p in problems)
    with pytest.raises(ConfigError) as error:
        check_sizes(cfg, 13)
    fix = str(error.value).split("e.g. ")[1].replace("--set ", "").split()
    fixed = load_config(None, [f"run_dir={tmp_path / 'run'}", *fix])  # the suggestion is a valid config
    check_sizes(fixed, 13)
