"""Loading exported SavedModels the way TF Serving would, with clear errors.

``load_saved_model(path)`` takes a model base path (the latest integer version is used) or a
version folder. It imports ScaNN first when the export needs its ops (metadata says so), and
turns a missing or corrupt model into a ``ModelLoadError`` naming the path.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

import tfrs_app  # noqa: F401

from tfrs_app.serving.errors import ModelLoadError  # noqa: F401  (re-exported)
from tfrs_app.serving.export import METADATA


def resolve_version(path: str | Path) -> Path:
    """A version folder for ``path``: itself if it holds saved_model.pb, else its highest integer child."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such SavedModel or model base path")
    versions = sorted((int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()))
    if not versions:
        raise ModelLoadError(f"{path}: no saved_model.pb and no integer version folders")
    version = path / str(versions[-1])
    if not (version / "saved_model.pb").exists():
        raise ModelLoadError(f"{version}: version folder without saved_model.pb (incomplete export?)")
    return version


def metadata(version_dir: str | Path) -> dict:
    meta = Path(version_dir) / METADATA
    return json.loads(meta.read_text()) if meta.exists() else {}


def load_saved_model(path: str | Path):
    """Loads the SavedModel at ``path`` (base path or version folder); returns the loaded object."""
    import tensorflow as tf

    version = resolve_version(path)
    if metadata(version).get("requires_scann"):
        import scann  # noqa: F401  registers the Scann>* ops this graph uses
    try:
        return tf.saved_model.load(str(version))
    except Exception as error:  # noqa: BLE001  any parse/op failure means the model is unusable
        raise ModelLoadError(f"{version}: cannot load SavedModel ({type(error).__name__}: {str(error)[:300]})") from error


def _seconds(value) -> int:
    """A whole number of Unix seconds that fits int64, or ValueError naming the field."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise ValueError(f"timestamp: expected whole Unix seconds, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"timestamp: expected whole Unix seconds, got {value!r}")
    seconds = int(value)
    if not -(2 ** 63) <= seconds < 2 ** 63:
        raise ValueError(f"timestamp: {value!r} does not fit in int64 seconds")
    return seconds


def query_request(user_ids: list[str], timestamps: list[int], histories: list[list[str]],
                  user_features: Mapping[str, list[str]] | None = None) -> dict:
    """Builds signature inputs from Python lists: pads histories with "" to one length.

    Raises ValueError naming the field for a wrong type or length (a timestamp that is not a
    whole number of seconds, a history that is a string rather than a list, ...).
    """
    import tensorflow as tf

    n = len(user_ids)
    for name, values in (("timestamp", timestamps), ("history", histories), *(user_features or {}).items()):
        if len(values) != n:
            raise ValueError(f"{name}: expected {n} values (one per user), got {len(values)}")
    stamps = np.array([_seconds(t) for t in timestamps], dtype=np.int64)
    for row, history in enumerate(histories):
        if isinstance(history, (str, bytes)) or not all(isinstance(h, str) for h in history):
            raise ValueError(f"history[{row}]: expected a list of item id strings, got {history!r}")
    width = max([len(h) for h in histories] + [1])
    padded = np.array([list(h) + [""] * (width - len(h)) for h in histories], dtype=object).astype(str)
    request = {
        "user_id": tf.constant(np.array(user_ids, dtype=object).astype(str)),
        "timestamp": tf.constant(stamps),
        "history": tf.constant(padded.reshape(n, width)),
    }
    for name, values in (user_features or {}).items():
        request[name] = tf.constant(np.array(values, dtype=object).astype(str))
    return request
