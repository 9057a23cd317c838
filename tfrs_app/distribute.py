"""``tf.distribute`` for both training stages: ``strategy: default | mirrored | multi_worker``.

- ``default``: one device, no distribution.
- ``mirrored``: ``MirroredStrategy`` over every local device (GPUs, or logical CPU devices);
  each replica takes ``batch_size / replicas`` of every global batch, gradients are all-reduced.
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` across machines, configured by the
  ``TF_CONFIG`` environment variable (``{"cluster": {"worker": ["host1:port", ...]},
  "task": {"type": "worker", "index": i}}``), one process per machine. Every worker runs the
  same command with its own ``--run-dir`` and ends with the same weights; use worker 0's.
  ``BackupAndRestore`` lets a restarted cluster resume.

Each stage creates its strategy first thing (multi-worker collectives must be configured before
any TensorFlow op runs), builds its model under ``strategy.scope()``, and Keras ``fit`` shards
the dataset across workers and replicas.
"""
from __future__ import annotations

import os

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("strategy: multi_worker reads the cluster from the TF_CONFIG environment variable, "
                             "which is not set")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy: must be one of {STRATEGIES}, got {name!r}")
