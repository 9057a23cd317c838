"""An interrupted training run resumes from its last finished epoch."""
from pathlib import Path

import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import load_config

SMOKE = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "smoke.yaml"


class Interrupt(tf.keras.callbacks.Callback):
    """Records the epochs it sees and raises after ``stop_after`` of them (a crash mid-run)."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.stop_after, self.epochs = stop_after, []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        if self.stop_after is not None and len(self.epochs) >= self.stop_after:
            raise RuntimeError("simulated crash")


def test_interrupted_training_resumes_where_it_stopped(tmp_path):
    from tfrs_app.retrieval.train import run

    cfg = load_config(SMOKE, [f"run_dir={tmp_path}"])
    first = Interrupt(stop_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, callbacks=[first])
    assert first.epochs == [0, 1]
    assert any((tmp_path / "retrieval" / "backup").rglob("*"))  # a checkpoint to resume from

    second = Interrupt()
    metrics = run(cfg, callbacks=[second])
    assert second.epochs == [2]  # only the epoch that was missing
    assert len(metrics["loss"]) == 1
    assert metrics["test"]["model"]["recall@100"] > metrics["test"]["popularity"]["recall@100"]


@pytest.mark.slow  # 20-35 s of training: the slow set (CI) keeps the default suite under 10 minutes
def test_interrupted_ranker_training_resumes_where_it_stopped(tmp_path):
    from tfrs_app.ranking.train import run

    cfg = load_config(SMOKE, [f"run_dir={tmp_path}", "ranker.epochs=3"])
    first = Interrupt(stop_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, callbacks=[first])
    assert first.epochs == [0, 1]
    assert any((tmp_path / "ranker" / "backup").rglob("*"))

    second = Interrupt()
    metrics = run(cfg, callbacks=[second])
    assert second.epochs == [2]
    assert not (tmp_path / "ranker" / "backup").exists()
    test = metrics["test"]["engagement"]
    assert test["model"]["auc"] > test["item_prior"]["auc"] + 0.1, test
