"""Shared fixtures: small synthetic data, one trained smoke run per session, the MovieLens path."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)

REPO = Path(__file__).resolve().parents[1]
SHARED_ML = Path(os.environ.get("TFRS_APP_ML_DIR", REPO.parent / "shared" / "data" / "ml-latest-small"))


CONFIGS = REPO / "pipelines" / "configs"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """The demo config (3000 users, 2000 items, ~40 events each) trained once per session
    (~30 s): (run_dir, TrainedRetrieval, metrics)."""
    from tfrs_app.config import load_config
    from tfrs_app.retrieval.train import load_trained, run

    run_dir = tmp_path_factory.mktemp("demo_run")
    cfg = load_config(CONFIGS / "demo.yaml", [f"run_dir={run_dir}", f"export.base_dir={run_dir / 'saved_models'}"])
    metrics = run(cfg)
    return run_dir, load_trained(run_dir), metrics


@pytest.fixture(scope="session")
def ranker_run(trained_run):
    """The ranker trained on the retrieval run's data (same splits), calibrated and exported."""
    from tfrs_app.config import load_config
    from tfrs_app.ranking.calibrate import calibrate
    from tfrs_app.ranking.train import run
    from tfrs_app.stages import export_ranker

    run_dir, _, _ = trained_run
    cfg = load_config(CONFIGS / "demo.yaml", [f"run_dir={run_dir}", f"export.base_dir={run_dir / 'saved_models'}",
                                              "ranker.num_bootstrap=200"])
    metrics = run(cfg)
    reports = calibrate(run_dir, cfg)
    path = export_ranker(run_dir)
    return run_dir, cfg, metrics, reports, Path(path)


@pytest.fixture(scope="session")
def movielens_manual_dir() -> Path:
    if not (SHARED_ML / "ml-latest-small.zip").exists():
        pytest.skip(f"MovieLens archive not found at {SHARED_ML} (set TFRS_APP_ML_DIR to the folder holding "
                    "ml-latest-small.zip); real-data tests skipped")
    return SHARED_ML


@pytest.fixture(scope="session")
def tfds_data_dir() -> Path:
    """A tfds data_dir kept between test runs (prepared datasets are reused), git-ignored."""
    path = REPO / ".cache" / "tfds"
    path.mkdir(parents=True, exist_ok=True)
    return path
