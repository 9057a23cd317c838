import pandas as pd
import pytest

from tfrs_app.data.schema import SchemaError
from tfrs_app.data.tabular import load_tabular

MAPPING = {"user_id": "userId", "item_id": "movieId", "timestamp": "ts", "rating": "stars"}


def write(tmp_path, kind):
    frame = pd.DataFrame({"userId": [1, 2], "movieId": [10, 11], "ts": [5, 6], "stars": [4.5, 1.0]})
    path = tmp_path / f"log.{kind}"
    frame.to_csv(path, index=False) if kind == "csv" else frame.to_parquet(path)
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_column_mapping(tmp_path, kind):
    items = tmp_path / "items.csv"
    pd.DataFrame({"movieId": [10, 11, 12], "title": ["A", "B", "C"], "genres": ["X|Y", "Y", ""]}).to_csv(items, index=False)
    out = load_tabular(str(write(tmp_path, kind)), {**MAPPING, "item_title": "title", "item_genres": "genres"},
                       items_path=str(items) if kind == "csv" else None)
    assert list(out.events["user_id"]) == ["1", "2"]
    assert list(out.events["rating"]) == [4.5, 1.0]
    if kind == "csv":
        assert list(out.items["item_title"]) == ["A", "B", "C"]


def test_mapping_to_a_missing_column_names_it(tmp_path):
    with pytest.raises(SchemaError, match="column mapping rating -> 'score'"):
        load_tabular(str(write(tmp_path, "csv")), {**MAPPING, "rating": "score"})


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SchemaError, match="the file is empty"):
        load_tabular(str(empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text("user_id,item_id,timestamp\n")
    with pytest.raises(SchemaError, match="empty"):
        load_tabular(str(header_only))
    with pytest.raises(FileNotFoundError, match="data.path"):
        load_tabular(str(tmp_path / "nope.csv"))
