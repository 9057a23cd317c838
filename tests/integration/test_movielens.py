"""ml-latest-small through the real tfds loader, offline from ../shared/data (skipped if absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfrs_app.config import load_config


pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).resolve().parents[2] / "pipelines" / "configs"


@pytest.fixture(scope="module")
def movielens(movielens_manual_dir, tfds_data_dir):
    from tfrs_app.data.movielens import load_movielens

    return load_movielens("latest-small", data_dir=str(tfds_data_dir), manual_dir=str(movielens_manual_dir))


def test_loader_joins_ratings_with_movies_and_maps_labels(movielens):
    events, items = movielens.events, movielens.items
    assert len(events) == 100_836 and events["user_id"].nunique() == 610
    assert len(items) == 9_742  # the catalog includes movies nobody rated
    toy_story = items.set_index("item_id").loc["1"]
    assert toy_story["item_title"] == "Toy Story (1995)"
    assert set(toy_story["item_genres"].split("|")) >= {"Animation", "Comedy"}
    np.testing.assert_array_equal(events["satisfaction"], (events["rating"] >= 4).astype(np.float32))
    np.testing.assert_array_equal(events["responsibility"], (events["rating"] > 1).astype(np.float32))
    assert (events["engagement"] == 1).all()


def test_logq_model_beats_popularity_and_the_tfrs_tutorial(movielens_manual_dir, tfds_data_dir, tmp_path):
    """Random 80/20 protocol of the TFRS tutorials (validation carved out of the 80, so the test
    20% is the tutorials' own), per-user metrics excluding seen items."""
    from tfrs_app.retrieval.train import run
    from tfrs_app.stages import build_index, export

    data = [f"data.manual_dir={movielens_manual_dir}", f"data.data_dir={tfds_data_dir}",
            "data.source=movielens/latest-small", "data.split=random", "data.test_fraction=0.2"]
    ours = run(load_config(CONFIGS / "movielens.yaml", data + ["data.val_fraction=0.1", f"run_dir={tmp_path / 'ours'}"]))
    tutorial = run(load_config(CONFIGS / "tfrs_tutorial.yaml", data + ["data.val_fraction=0.0", "retrieval.use_logq=true",
                                                                         f"run_dir={tmp_path / 'tutorial'}"]))
    o, t = ours["test"]["model"], tutorial["test"]["model"]
    p, knn = ours["test"]["popularity"], ours["test"]["item_knn"]
    for metric in ("recall@100", "ndcg@10", "top_100_accuracy"):
        assert o[metric] > p[metric], (metric, o, p)
        assert o[metric] > knn[metric], (metric, o, knn)
    # nDCG@10 against the tutorial towers + logQ is a tie here (0.290 vs 0.289), not asserted
    for metric in ("recall@100", "top_100_accuracy"):
        assert o[metric] > t[metric], (metric, o, t)
    # bench/retrieval_quality.py: 0.220 vs 0.192 (+15%) top-100 accuracy over the tutorial towers with logQ
    assert o["top_100_accuracy"] >= 1.1 * t["top_100_accuracy"], (o, t)
    assert o["recall@100"] > 1.1 * p["recall@100"]
    assert ours["early_stopping"]["best_epoch"] < len(ours["loss"]) <= 20  # stopped on validation

    report = build_index(tmp_path / "ours")
    assert report["recall@10"] >= 0.9
    paths = export(tmp_path / "ours", base_dir=str(tmp_path / "saved_models"))
    assert sorted(paths) == ["retrieval", "retrieval_scann"]


def test_demo_end_to_end_on_movielens(movielens_manual_dir, tfds_data_dir, tmp_path, capsys):
    """`make demo DATASET=movielens/latest-small`: retrieval, index, ranker, thresholds, all five
    exports and final recommendations with titles, on real data."""
    from tfrs_app.cli import main

    code = main(["demo", "--dataset", "movielens/latest-small", "--config", str(CONFIGS / "movielens.yaml"),
                 "--manual-dir", str(movielens_manual_dir), "--data-dir", str(tfds_data_dir),
                 "--set", f"run_dir={tmp_path / 'run'}", "--set", f"export.base_dir={tmp_path / 'saved_models'}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| test | satisfaction |" in out and "| responsibility | 0.97 | dp |" in out
    assert "path personalized; 10 items" in out and "path cold_start; 10 items" in out
    assert "(1995)" in out or "(20" in out  # real titles in the final lists
    names = sorted(p.name for p in (tmp_path / "saved_models").iterdir())
    assert names == ["models.config", "models.stock.config", "ranker", "recommender", "recommender_scann",
                     "retrieval", "retrieval_scann"]
