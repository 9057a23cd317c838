"""Retrieval SavedModels in TF-Serving layout, written atomically.

``<base_dir>/<model>/<version>/`` is a TF Serving model base path with integer versions:

- ``retrieval``: query tower + exact ``BruteForce`` top-k. Stock TensorFlow ops only, so stock
  TF Serving (and any process with just ``import tensorflow``) loads it.
- ``retrieval_scann``: query tower + ScaNN. Needs the ScaNN custom ops: ``import scann`` before
  ``tf.saved_model.load``, or a TF Serving build that links them.

Signature ``serving_default`` takes raw features by name and returns the top-k:

    inputs:  user_id [B] string, timestamp [B] int64 (Unix s in [0, 2300-01-01)), history [B, L] string
             (most recent first, "" pads, L may be 1 with ""), user_<f> [B] string per feature
    outputs: item_ids [B, k] string, scores [B, k] float32

One export is one version number for all its models: one past the highest version of any model
under the base dir, taken under an exclusive lock (``<base_dir>/.export.lock``; a second export
waits for it). Each model is written into a hidden ``<model>/.tmp-<version>-<pid>`` folder; only
when all of them are written are they renamed into place and ``models.config`` rewritten, so TF
Serving never sees half a model or half an export, and the previous versions stay loadable
throughout. A failure removes everything this export wrote; the temp folders of a killed export
are removed by the next one.
``assets.extra/tfrs_app.json`` records what the model needs (``requires_scann``) and how it
was built; TF Serving ignores it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.serving.errors import ExportError  # noqa: F401  (re-exported)
from tfrs_app.serving.inputs import checked

METADATA = "assets.extra/tfrs_app.json"
LOCK = ".export.lock"
LOCK_TIMEOUT_S = 900.0  # longer than a whole export of every model takes on 2 cores
_TMP = re.compile(r"\.tmp-(\d+)-(\d+)")

log = logging.getLogger(__name__)


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
        features = checked(features, self.input_specs)
        query = self.query_tower(features, training=False)
        scores, ids = self.index(query, k=self.k)
        # ScaNN's op has no static shape: state it, so signature metadata shows [B, k]
        return {"item_ids": tf.ensure_shape(ids, [None, self.k]), "scores": tf.ensure_shape(scores, [None, self.k])}

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(self.input_specs)}


def next_version(base_dir: Path) -> int:
    """One past the highest version of any model under ``base_dir``: the models of one export share
    a number, and a model exported alone never takes a number another model already has."""
    versions = [int(v.name) for v in Path(base_dir).glob("*/*") if v.is_dir() and v.name.isdigit()]
    return max(versions, default=0) + 1


@contextmanager
def export_lock(base_dir: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``<base_dir>/.export.lock``, waiting up to ``timeout_s`` for
    another export to finish (then ExportError naming the lock).

    The kernel drops the lock of a killed process, so a dead export never blocks the next one.
    The file is removed on release (a waiter that then holds a removed file locks the new one),
    so the base dir keeps only models and configs.
    """
    lock = Path(base_dir) / LOCK
    deadline = time.monotonic() + timeout_s
    waited = False
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not waited:
                log.warning("%s: another export into %s is running; waiting up to %.0fs", lock, base_dir, timeout_s)
                waited = True
            if time.monotonic() > deadline:
                raise ExportError(f"{lock}: another export into {base_dir} holds this lock; gave up after waiting "
                                  f"{timeout_s:.0f}s (let it finish, then export again)") from None
            time.sleep(0.1)
            continue
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def remove_stale_temps(base_dir: Path) -> list[Path]:
    """Removes every ``<model>/.tmp-<version>-<pid>`` folder: called under the lock, when no other
    export can be writing, so each one is left by an export that was killed."""
    removed = [tmp for tmp in sorted(Path(base_dir).glob("*/.tmp-*")) if _TMP.fullmatch(tmp.name) and tmp.is_dir()]
    for tmp in removed:
        shutil.rmtree(tmp, ignore_errors=True)
    if removed:
        log.warning("removed %d temp folder(s) of killed exports: %s", len(removed), ", ".join(map(str, removed)))
    return removed


def publish_all(base_dir: str | os.PathLike, writes: Mapping[str, Callable[[Path], None]],
                version: int | None = None, lock_timeout_s: float = LOCK_TIMEOUT_S) -> dict[str, Path]:
    """Publishes one export: ``write(tmp)`` per model, then all renamed to ``<base_dir>/<model>/<version>``.

    Under the lock: stale temp folders are removed, the version defaults to ``next_version``,
    every model is written to its temp folder, and only then are all renamed into place and
    ``models.config`` rewritten (last). An existing version is never overwritten. On any
    failure this export's temp folders and the versions it already renamed are removed, so the
    models are published together or not at all; a full disk becomes an ExportError naming the
    base dir. Returns {model: version path}.
    """
    from tfrs_app.serving.tf_serving import write_models_config

    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    with export_lock(base, lock_timeout_s):
        remove_stale_temps(base)
        version = next_version(base) if version is None else int(version)
        finals = {name: base / name / str(version) for name in writes}
        for final in finals.values():
            if final.exists():
                raise FileExistsError(f"{final}: version {version} already exists; versions are never overwritten")
        temps = {name: base / name / f".tmp-{version}-{os.getpid()}" for name in writes}
        new_models = [tmp.parent for tmp in temps.values() if not tmp.parent.exists()]
        renamed = []
        try:
            for name, write in writes.items():
                temps[name].parent.mkdir(parents=True, exist_ok=True)
                write(temps[name])
            for name in writes:
                os.rename(temps[name], finals[name])
                renamed.append(finals[name])
            write_models_config(base)
        except BaseException as error:
            for path in (*temps.values(), *renamed):
                shutil.rmtree(path, ignore_errors=True)
            for model in new_models:  # a model folder this export created, now empty
                with suppress(OSError):
                    model.rmdir()
            if _disk_full(error):
                raise ExportError(f"{base}: the disk is full ({type(error).__name__}: {error}); nothing of export "
                                  f"version {version} was kept: free space there and export again") from error
            raise
    return finals


def publish(model_dir: str | os.PathLike, write: Callable[[Path], None], version: int | None = None) -> Path:
    """``publish_all`` of one model; ``model_dir`` is ``<base_dir>/<model>``. Returns the version path."""
    model_dir = Path(model_dir)
    return publish_all(model_dir.parent, {model_dir.name: write}, version)[model_dir.name]


def _disk_full(error: BaseException) -> bool:
    """ENOSPC (or a quota) from Python, or TensorFlow's ResourceExhaustedError: what TF's file
    system turns ENOSPC into while tf.saved_model.save writes variables."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error).lower()  # ResourceExhaustedError is also out-of-memory: only the disk's is "full"
    return isinstance(error, tf.errors.ResourceExhaustedError) and ("no space" in text or "quota" in text)


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
