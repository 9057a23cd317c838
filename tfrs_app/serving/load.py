"""Loading exported SavedModels the way TF Serving would, with clear errors.

``load_saved_model(path)`` takes a model base path (its newest complete integer version is used,
see ``version_problem``) or a version folder. It imports ScaNN first when the export needs its
ops (metadata says so), and turns a missing or corrupt model into a ``ModelLoadError`` naming the path.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping

import numpy as np

import tfrs_app  # noqa: F401

from tfrs_app.serving.errors import ModelLoadError  # noqa: F401  (re-exported)
from tfrs_app.serving.export import METADATA
from tfrs_app.serving.inputs import MAX_SECONDS

log = logging.getLogger(__name__)


def version_dirs(model_dir: str | Path) -> list[Path]:
    """The integer version folders of a model base path, lowest first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted((v for v in model_dir.iterdir() if v.is_dir() and v.name.isdigit()), key=lambda v: int(v.name))


def version_problem(version: str | Path) -> str | None:
    """Why a version folder is not a complete SavedModel, or None when it is.

    Complete: ``saved_model.pb`` is non-empty and parses into at least one graph, and
    ``variables/`` holds ``variables.index`` and every data shard. ``tf.saved_model.save`` writes
    ``variables.index`` even for a model without variables (it holds the object graph), so a
    missing one means an interrupted write or copy. Reads only the graph proto: loads no ops.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    version = Path(version)
    pb = version / "saved_model.pb"
    if not pb.is_file():
        return "no saved_model.pb"
    data = pb.read_bytes()
    if not data:
        return "saved_model.pb is empty"
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(data)
    except Exception as error:  # noqa: BLE001  a truncated or foreign file
        return f"saved_model.pb does not parse ({error})"
    if not proto.meta_graphs:
        return "saved_model.pb holds no graph"
    variables = version / "variables"
    if not (variables / "variables.index").is_file():
        return "no variables/variables.index"
    shards = list(variables.glob("variables.data-*-of-*"))
    expected = int(shards[0].name.rsplit("-of-", 1)[1]) if shards else 1
    if len(shards) < expected:
        return f"variables/ holds {len(shards)} of its {expected} data shards"
    return None


def newest_complete(model_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(newest complete version or None, [(newer incomplete version, why)], newest first)."""
    skipped = []
    for version in reversed(version_dirs(model_dir)):
        problem = version_problem(version)
        if problem is None:
            return version, skipped
        skipped.append((version, problem))
    return None, skipped


def resolve_version(path: str | Path) -> Path:
    """A version folder for ``path``: itself if it holds saved_model.pb, else its newest complete
    integer version. Newer incomplete ones (a copy still running, an empty or unparsable
    saved_model.pb, missing variables) are skipped with a warning naming each and why, so one
    broken version does not take serving down while an older one works."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such SavedModel or model base path")
    if not version_dirs(path):
        raise ModelLoadError(f"{path}: no saved_model.pb and no integer version folders")
    version, skipped = newest_complete(path)
    reasons = "; ".join(f"version {v.name}: {why}" for v, why in skipped)
    if version is None:
        raise ModelLoadError(f"{path}: cannot load SavedModel: no complete version ({reasons})")
    if skipped:
        log.warning("%s: using version %s, skipping newer incomplete ones (%s)", path, version.name, reasons)
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
    """A whole number of Unix seconds in [0, MAX_SECONDS) (2300-01-01), or ValueError naming the
    field: a millisecond value (1.7e12) would pass as a date far in the future, which the towers
    clip to the training range's end, so the mistake would serve quietly instead of failing."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise ValueError(f"timestamp: expected whole Unix seconds, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"timestamp: expected whole Unix seconds, got {value!r}")
    seconds = int(value)
    if not 0 <= seconds < MAX_SECONDS:
        hint = " (milliseconds?)" if seconds >= MAX_SECONDS else ""
        raise ValueError(f"timestamp: expected Unix seconds in [0, {MAX_SECONDS}), got {value!r}{hint}")
    return seconds


def query_request(user_ids: list[str], timestamps: list[int], histories: list[list[str]],
                  user_features: Mapping[str, list[str]] | None = None) -> dict:
    """Builds signature inputs from Python lists: pads histories with "" to one length.

    Raises ValueError naming the field for a wrong type or length (a timestamp that is not a
    whole number of seconds in [0, MAX_SECONDS), a history that is a string rather than a list, ...).
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
