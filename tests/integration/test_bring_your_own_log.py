"""Bring your own log: a TSV with millisecond timestamps, no title or genre columns, a rating
column and a mapping onto a column name the file also has, through every CLI stage with no
manual fix (validate, train-retrieval, train-ranker, calibrate-thresholds, export, recommend)."""
import json

import numpy as np
import pandas as pd
import pytest

from tfrs_app.cli import main
from tfrs_app.data.synthetic import generate


def write_log(path, duplicates: int = 5) -> pd.DataFrame:
    """The synthetic log as a shop might export it: ids with leading zeros, ms times, 0.5-5 stars."""
    events = generate(num_users=300, num_items=150, seed=3).interactions.events
    rng = np.random.default_rng(0)
    liked = events["satisfaction"].fillna(0.5).to_numpy()
    stars = np.clip(np.round(2 * (1.5 + 3.2 * liked + rng.normal(0, 0.6, len(events)))) / 2, 0.5, 5.0)
    log = pd.DataFrame({"uid": events["user_id"].str.replace("u", "000"), "sku": events["item_id"].str.replace("i", "00"),
                        "time_ms": events["timestamp"].to_numpy() * 1000 + rng.integers(0, 999, len(events)),
                        "timestamp": "2026-01-01",  # the export date: a same-named column the mapping replaces
                        "stars": stars})
    log = pd.concat([log, log.iloc[:duplicates]], ignore_index=True)
    log.to_csv(path, sep="\t", index=False)
    return log


@pytest.mark.slow
def test_tsv_log_goes_through_every_stage(tmp_path, capsys):
    log = write_log(tmp_path / "log.tsv")
    config = tmp_path / "log.yaml"
    config.write_text(f"""run_dir: {tmp_path / 'run'}
data:
  source: csv
  path: {tmp_path / 'log.tsv'}
  columns: {{user_id: uid, item_id: sku, timestamp: time_ms, rating: stars}}
  labels_from_rating: true
retrieval: {{epochs: 2}}
ranker: {{epochs: 2, mc_samples: 4}}
export: {{base_dir: {tmp_path / 'models'}}}
""")
    assert main(["validate", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    for expected in ("delimiter '\\t' (detected)", "read as milliseconds (detected", "5 exact duplicate rows",
                     "file column 'timestamp' replaced by the mapping timestamp -> 'time_ms'",
                     f"rows: {len(log)} events", "satisfaction", "no problems found"):
        assert expected in shown, expected

    assert main(["train-retrieval", "--config", str(config)]) == 0
    assert main(["train-ranker", "--config", str(config)]) == 0
    assert main(["calibrate-thresholds", "--run-dir", str(tmp_path / "run")]) == 0
    assert main(["export", "--run-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    user = log["uid"].iloc[0]
    assert user.startswith("000")  # ids kept exactly as written
    assert main(["recommend", "--user", user, "--model", str(tmp_path / "models" / "recommender"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["items"], result
    catalog = set(log["sku"])
    assert all(item["item_id"] in catalog for item in result["items"])  # "0044", not "44"
    train = pd.read_parquet(tmp_path / "run" / "data" / "train.parquet")
    assert train["timestamp"].max() < 2_000_000_000  # milliseconds became seconds
    assert set(train["satisfaction"].unique()) == {0.0, 1.0}  # labels derived from the stars


def test_validate_lists_every_problem_with_file_column_and_row(tmp_path, capsys):
    path = tmp_path / "log.tsv"
    path.write_text("uid\tsku\tts\tstars\nu1\ta\t1600000000\t4\nu2\t\t1600000100\tfive\nu3\tc\t1600000200000\t3\n")
    code = main(["validate", "--set", "data.source=csv", "--set", f"data.path={path}", "--set",
                 "data.columns={user_id: uid, item_id: sku, timestamp: ts, rating: stars}",
                 "--set", f"run_dir={tmp_path / 'run'}"])
    out = capsys.readouterr().out
    assert code == 1
    assert "problems (" in out
    for expected in ("column 'item_id' has 1 null values (first at row 1)",
                     "column 'timestamp' mixes timestamp units: seconds (row 0: 1600000000), milliseconds (row 2",
                     "column 'rating' must be numeric, got 'five' at row 1",
                     "ranker head 'satisfaction': no labels in the log"):
        assert expected in out, expected
    assert str(path) in out
    assert not (tmp_path / "run").exists()  # validate trains and writes nothing
