"""`tfrs-app tune`: keras-tuner over a stage, objective on validation, best config as YAML, resumable."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SMOKE = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "smoke.yaml"


@pytest.mark.slow  # 20-35 s of training: the slow set (CI) keeps the default suite under 10 minutes
def test_three_trials_write_a_config_a_pipeline_accepts_and_the_search_resumes(tmp_path, capsys):
    from tfrs_app.cli import main
    from tfrs_app.config import load_config

    common = ["tune", "--config", str(SMOKE), "--stage", "retrieval", "--tuner", "random", "--epochs", "1",
              "--set", f"run_dir={tmp_path / 'runs'}", "--directory", str(tmp_path / "search")]
    assert main(common + ["--max-trials", "2"]) == 0
    trials = sorted(p.name for p in (tmp_path / "search" / "trials").iterdir())
    assert len(trials) == 2
    assert main(common + ["--max-trials", "3"]) == 0  # resumes: one more trial, not three
    assert len(list((tmp_path / "search" / "trials").iterdir())) == 3
    out = capsys.readouterr().out
    assert "best of 3 trials: objective" in out

    best = tmp_path / "search" / "best.yaml"
    text = best.read_text()
    assert text.startswith("# best of 3 random trials for retrieval")
    cfg = load_config(best)
    chosen = yaml.safe_load(text)["retrieval"]
    assert cfg.retrieval.embedding_dim in (32, 64, 128) and cfg.retrieval.epochs == 1
    assert chosen["temperature"] == cfg.retrieval.temperature
    # the pipeline trains from it
    assert main(["train-retrieval", "--config", str(best), "--run-dir", str(tmp_path / "from_best")]) == 0
    assert (tmp_path / "from_best" / "retrieval" / "metrics.json").exists()


@pytest.mark.slow  # 20-35 s of training: the slow set (CI) keeps the default suite under 10 minutes
def test_ranker_search_uses_the_validation_auc(tmp_path):
    from tfrs_app.config import load_config
    from tfrs_app.tuning import tune

    base = load_config(SMOKE, [f"run_dir={tmp_path / 'runs'}"])
    path, best = tune(base, "ranker", "bayesian", max_trials=2, directory=str(tmp_path / "search"), epochs=1)
    assert best["trials"] == 2 and 0.5 < best["score"] <= 1.0
    cfg = load_config(path)
    assert cfg.ranker.loss_weights["engagement"] == 1.0 and len(cfg.ranker.trunk_layers) in (1, 2, 3)


def test_bad_tuning_arguments_are_refused(tmp_path):
    from tfrs_app.config import load_config
    from tfrs_app.tuning import make_tuner

    base = load_config(SMOKE, [f"run_dir={tmp_path}"])
    with pytest.raises(ValueError, match="--tuner"):
        make_tuner(base, "retrieval", "grid", 3, str(tmp_path / "s"))
    with pytest.raises(ValueError, match="--max-trials"):
        make_tuner(base, "retrieval", "random", 0, str(tmp_path / "s"))
