"""tf.distribute: MirroredStrategy over two logical CPU devices trains as well as one device;
MultiWorkerMirroredStrategy with two local worker processes on loopback completes a run."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "smoke.yaml"
MIRRORED = r"""
import json, sys
import tfrs_app
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfrs_app.config import load_config
from tfrs_app.retrieval.train import run
out = {}
for strategy in ("default", "mirrored"):
    metrics = run(load_config(sys.argv[1], [f"run_dir={sys.argv[2]}/{strategy}", f"strategy={strategy}"]))
    out[strategy] = {"replicas": metrics["replicas"], "test": metrics["test"]}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow  # 20-35 s of training: the slow set (CI) keeps the default suite under 10 minutes
def test_mirrored_over_two_cpu_devices_trains_as_well_as_one(tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(SMOKE), str(tmp_path)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert out["default"]["replicas"] == 1 and out["mirrored"]["replicas"] == 2
    mirrored, default = out["mirrored"]["test"], out["default"]["test"]
    assert mirrored["model"]["recall@100"] >= 0.9 * default["model"]["recall@100"], (mirrored, default)
    assert mirrored["model"]["recall@100"] > 1.2 * mirrored["popularity"]["recall@100"]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_on_two_local_processes_completes(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    cli = Path(sys.executable).with_name("tfrs-app")
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [str(cli), "train-retrieval", "--config", str(SMOKE), "--strategy", "multi_worker",
             "--run-dir", str(tmp_path / f"worker-{index}"), "--set", "retrieval.epochs=2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=600))
        except subprocess.TimeoutExpired:
            for w in workers:
                w.kill()
            raise
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    chief = json.loads((tmp_path / "worker-0" / "retrieval" / "metrics.json").read_text())
    assert chief["strategy"] == "multi_worker" and chief["replicas"] == 2
    assert len(chief["loss"]) == 2
    assert chief["test"]["model"]["recall@100"] > chief["test"]["popularity"]["recall@100"]
