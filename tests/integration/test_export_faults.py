"""A real export (all five models of the demo run) under faults: it is published whole or not
at all, and a missing piece is refused before anything is written."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_real_export_is_published_whole_or_not_at_all(ranker_run, tmp_path, monkeypatch):
    import tensorflow as tf

    from tfrs_app import stages
    from tfrs_app.serving.export import ExportError
    from tfrs_app.serving.load import resolve_version
    from tfrs_app.serving.tf_serving import describe

    run_dir, base = tmp_path / "run", tmp_path / "saved_models"
    shutil.copytree(ranker_run[0], run_dir, ignore=shutil.ignore_patterns("saved_models", "logs"))
    (run_dir / "ranker" / "thresholds" / "satisfaction.json").rename(run_dir / "satisfaction.json")
    with pytest.raises(FileNotFoundError, match="no thresholds for satisfaction"):
        stages.export(run_dir, base_dir=str(base))
    assert not base.exists()  # refused before the retrieval models were written
    (run_dir / "satisfaction.json").rename(run_dir / "ranker" / "thresholds" / "satisfaction.json")

    real = stages.save_server

    def full_on_the_last(server, path, metadata, scann=False, warmup=None):
        real(server, path, metadata, scann, warmup)
        if metadata["model"] == "recommender_scann":
            raise tf.errors.ResourceExhaustedError(None, None, f"{path}/variables: No space left on device")

    monkeypatch.setattr(stages, "save_server", full_on_the_last)
    with pytest.raises(ExportError, match=f"{base}: the disk is full"):
        stages.export(run_dir, base_dir=str(base))
    assert list(base.iterdir()) == [] and not (run_dir / "exports.json").exists()

    monkeypatch.setattr(stages, "save_server", real)
    paths = stages.export(run_dir, base_dir=str(base))
    assert sorted(paths) == ["ranker", "recommender", "recommender_scann", "retrieval", "retrieval_scann"]
    assert {Path(p).name for p in paths.values()} == {"1"}
    assert all(resolve_version(base / name) == Path(path) for name, path in paths.items())
    shown = describe(base)
    assert shown.count("version 1: complete") == 5 and "INCOMPLETE" not in shown
    assert (base / "models.config").read_text().count("name:") == 5

    shutil.rmtree(run_dir / "ranker" / "checkpoint")  # a ranker whose training was refused or killed
    paths = stages.export(run_dir, base_dir=str(base))
    assert sorted(paths) == ["retrieval", "retrieval_scann"]  # the trained retrieval still exports
