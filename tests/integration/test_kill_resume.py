"""A training process killed mid-run (SIGKILL, no cleanup) resumes from its backup when started
again: the full number of optimizer steps, and a model as good as an uninterrupted one."""
from __future__ import annotations

import pytest

import json
import subprocess
import sys
from pathlib import Path

SMOKE = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "smoke.yaml"
KILLED = r"""
import os, signal, sys
import tfrs_app
import tensorflow as tf
from tfrs_app.config import load_config
from tfrs_app.retrieval.train import run

class Kill(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:  # two epochs done and backed up: die like an OOM-killed or preempted worker
            os.kill(os.getpid(), signal.SIGKILL)

run(load_config(sys.argv[1], [f"run_dir={sys.argv[2]}", "retrieval.epochs=4"]), callbacks=[Kill()])
"""


@pytest.mark.slow  # 20-35 s of training: the slow set (CI) keeps the default suite under 10 minutes
def test_killed_training_resumes_to_the_full_run(tmp_path):
    from tfrs_app.cli import main

    killed = subprocess.run([sys.executable, "-c", KILLED, str(SMOKE), str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert any((tmp_path / "run" / "retrieval" / "backup").rglob("*"))
    assert not (tmp_path / "run" / "retrieval" / "metrics.json").exists()

    args = ["train-retrieval", "--config", str(SMOKE), "--set", "retrieval.epochs=4"]
    assert main(args + ["--run-dir", str(tmp_path / "run")]) == 0
    resumed = json.loads((tmp_path / "run" / "retrieval" / "metrics.json").read_text())
    assert main(args + ["--run-dir", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "retrieval" / "metrics.json").read_text())

    assert len(resumed["loss"]) == 2  # only epochs 3 and 4 ran after the restart
    assert resumed["optimizer_steps"] == whole["optimizer_steps"] > 0  # the full number of steps
    r, w = resumed["test"]["model"]["recall@100"], whole["test"]["model"]["recall@100"]
    assert r >= 0.9 * w, (r, w)
    assert r > resumed["test"]["popularity"]["recall@100"]
