"""Retrieval SavedModels in TF-Serving layout, written atomically.

``<base_dir>/<model>/<version>/`` is a TF Serving model base path with integer versions:

- ``retrieval``: query tower + exact ``BruteForce`` top-k. Stock TensorFlow ops only, so stock
  TF Serving (and any process with just ``import tensorflow``) loads it.
- ``retrieval_scann``: query tower + ScaNN. Needs the ScaNN custom ops: ``import scann`` before
  ``tf.saved_model.load``, or a TF Serving build that links them.

Signature ``serving_default`` takes raw features by name and returns the top-k:

    inputs:  user_id [B] string, timestamp [B] int64 (Unix s), history [B, L] string
             (most recent first, "" pads, L may be 1 with ""), user_<f> [B] string per feature
    outputs: item_ids [B, k] string, scores [B, k] float32

A version is written into a hidden temporary folder and renamed into place when complete, so
TF Serving never sees half a model and the previous version stays loadable throughout.
``assets.extra/tfrs_app.json`` records what the model needs (``requires_scann``) and how it
was built; TF Serving ignores it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf

METADATA = "assets.extra/tfrs_app.json"


def query_specs(user_features: Sequence[str]) -> dict[str, tf.TensorSpec]:
    """Signature inputs of a query: user_id, timestamp, history and each user_<f>, all batched."""
    return {
        "user_id": tf.TensorSpec([None], tf.string, name="user_id"),
        "timestamp": tf.TensorSpec([None], tf.int64, name="timestamp"),
        "history": tf.TensorSpec([None, None], tf.string, name="history"),
        **{name: tf.TensorSpec([None], tf.string, name=name) for name in user_features},
    }


class RetrievalServer(tf.Module):
    """Raw query features -> top-k item ids and scores, through a query tower and an index layer."""

    def __init__(self, query_tower: tf.keras.Model, index: tf.keras.layers.Layer, user_features: Sequence[str], k: int):
        super().__init__(name="retrieval_server")
        self.query_tower = query_tower
        self.index = index
        self.k = int(k)
        self.input_specs = query_specs(user_features)
        self.serve = tf.function(self._serve)

    def _serve(self, features):
        query = self.query_tower(features, training=False)
        scores, ids = self.index(query, k=self.k)
        # ScaNN's op has no static shape: state it, so signature metadata shows [B, k]
        return {"item_ids": tf.ensure_shape(ids, [None, self.k]), "scores": tf.ensure_shape(scores, [None, self.k])}

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(self.input_specs)}


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def publish(model_dir: str | os.PathLike, write: Callable[[Path], None], version: int | None = None) -> Path:
    """Calls ``write(tmp_dir)`` and renames tmp_dir to ``model_dir/<version>``; returns that path.

    The version defaults to one past the highest existing. An existing version is never
    overwritten, and a failed write leaves nothing behind.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final}: version {version} already exists; versions are never overwritten")
    tmp = model_dir / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def save_server(server: tf.Module, path: Path, metadata: dict, scann: bool = False,
                warmup: Optional[Mapping[str, np.ndarray]] = None) -> None:
    """tf.saved_model.save with the server's signatures, the metadata file and, given example
    ``warmup`` inputs, TF Serving warmup records for every signature.

    ``server`` has ``signatures()`` and ``input_specs``; ``metadata`` adds what the model is.
    """
    from tfrs_app.serving.tf_serving import write_warmup

    options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]) if scann else None
    signatures = server.signatures()
    tf.saved_model.save(server, str(path), signatures=signatures, options=options)
    if warmup is not None:
        write_warmup(path, metadata["model"], sorted(signatures), warmup)
    meta = path / METADATA
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({**metadata, "requires_scann": scann, "inputs": sorted(server.input_specs),
                                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2))
