import numpy as np
import pandas as pd
import pytest

from tfrs_app.data.schema import SchemaError, validate_interactions


def events(**changes):
    frame = pd.DataFrame({"user_id": ["a", "b", "a"], "item_id": [1, 2, 3], "timestamp": [30, 10, 20],
                          "rating": [4.0, 1.0, 5.0], "satisfaction": [1, 0, np.nan], "user_segment": ["x", "y", "x"]})
    for key, value in changes.items():
        if value is None:
            frame = frame.drop(columns=key)
        else:
            frame[key] = value
    return frame


def test_canonical_dtypes_order_and_catalog():
    out = validate_interactions(events(), pd.DataFrame({"item_id": [1, 2, 3, 4], "item_title": ["A", "B", "C", "D"]}))
    e = out.events
    assert list(e["timestamp"]) == [10, 20, 30]
    assert list(e["item_id"]) == ["2", "3", "1"]  # ids become strings, rows sorted by time
    assert np.isnan(e["satisfaction"].iloc[1])  # missing labels stay missing
    assert out.user_features == ("user_segment",)
    assert list(out.items["item_id"]) == ["1", "2", "3", "4"]  # the catalog keeps unrated items
    assert list(out.items["item_genres"]) == [""] * 4


def test_catalog_gains_items_only_in_the_log():
    out = validate_interactions(events(), pd.DataFrame({"item_id": [1]}))
    assert sorted(out.items["item_id"]) == ["1", "2", "3"]


def test_timestamps_parse_from_strings():
    out = validate_interactions(events(timestamp=["2020-01-01T00:00:10Z", "2020-01-01", "1970-01-02"]))
    assert sorted(out.events["timestamp"]) == [86400, 1577836800, 1577836810]


@pytest.mark.parametrize("frame, message", [
    (events(user_id=None), "missing required column 'user_id'"),
    (events(item_id=[1, None, 3]), "column 'item_id' has 1 null values"),
    (events(user_id=["a", " ", "c"]), "column 'user_id' has an empty id at row 1"),
    (events(timestamp=["2020-01-01", "not a date", "2020-01-02"]), "column 'timestamp' has an unparsable timestamp 'not a date' at row 1"),
    (events(timestamp=[1, None, 3]), "column 'timestamp' has 1 null values"),
    (events(rating=[4, "five", 3]), "column 'rating' must be numeric, got 'five' at row 1"),
    (events(satisfaction=[1, 2, 0]), "label 'satisfaction' must be 0, 1 or missing, got 2.0 at row 1"),
    (events(weight_satisfaction=[1.0, -1.0, 1.0]), "column 'weight_satisfaction' must be finite and >= 0"),
    (events().iloc[:0], "the interaction log is empty"),
])
def test_bad_input_names_the_field(frame, message):
    with pytest.raises(SchemaError) as error:
        validate_interactions(frame)
    assert message in str(error.value)


def test_bad_catalog():
    with pytest.raises(SchemaError, match="duplicate item_id '1'"):
        validate_interactions(events(), pd.DataFrame({"item_id": [1, 1]}))
    with pytest.raises(SchemaError, match="items: missing required column 'item_id'"):
        validate_interactions(events(), pd.DataFrame({"id": [1]}))


def test_input_is_not_mutated():
    frame = events()
    before = frame.copy()
    validate_interactions(frame)
    pd.testing.assert_frame_equal(frame, before)
