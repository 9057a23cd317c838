"""Baselines beside the towers: grid points are chosen on validation, never on test."""
import numpy as np
import pandas as pd
import pytest

from tfrs_app.data.splits import Splits
from tfrs_app.retrieval import compare
from tfrs_app.retrieval.evaluate import EvalSet


class Prefers:
    """Scores item ``prefer`` first for everyone."""

    name = "prefers"

    def __init__(self, prefer: int):
        self.prefer = prefer

    def fit(self, train, num_items, item_rows):
        self.num_items = num_items
        return self

    def score(self, histories):
        scores = np.zeros((len(histories), self.num_items), np.float32)
        scores[:, self.prefer] = 1.0
        return scores


def _set(relevant_item):
    known = [np.array([0])]
    return EvalSet({}, [{relevant_item}], known, known, {}, np.array([relevant_item]), np.array([0]))


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(compare.BASELINES, "prefers", Prefers)
    monkeypatch.setitem(compare.GRIDS, "prefers", [{"prefer": 3}, {"prefer": 2}])
    catalog = pd.DataFrame({"item_id": ["a", "b", "c", "d"]})
    train = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": np.array([1], np.int64)})
    return Splits(train, train.iloc[:0], train.iloc[:0]), catalog


def test_the_grid_point_is_chosen_on_validation_not_test(fake):
    splits, catalog = fake
    out = compare.evaluate_baselines(["prefers"], splits, catalog, _set(2), _set(3), ks=[1], monitor="recall@1")
    result = out["prefers"]
    assert result["params"] == {"prefer": 2}  # validation's relevant item is 2
    assert result["val"]["recall@1"] == 1.0 and result["test"]["recall@1"] == 0.0  # test would have chosen 3
    assert [g["val_recall@1"] for g in result["grid"]] == [0.0, 1.0]


def test_without_validation_the_first_grid_point_is_kept(fake):
    splits, catalog = fake
    out = compare.evaluate_baselines(["prefers"], splits, catalog, None, _set(3), ks=[1], monitor="recall@1")
    assert out["prefers"]["params"] == {"prefer": 3} and out["prefers"]["val"] is None


def test_an_unknown_baseline_names_the_field(fake):
    splits, catalog = fake
    with pytest.raises(ValueError, match="retrieval.baselines"):
        compare.evaluate_baselines(["slim"], splits, catalog, None, _set(3), ks=[1], monitor="recall@1")
