"""What TF Serving needs beside the SavedModels: warmup records and a models.config.

- ``write_warmup(version_dir, model_name, signatures, inputs)``: ``assets.extra/tf_serving_warmup_requests``,
  a TFRecord file of ``PredictionLog`` protos (tensorflow-serving-api), one ``PredictRequest``
  per signature, so TF Serving runs every signature once before it marks the version
  available (no slow first request after a deploy). ``replay_warmup`` parses the records and
  runs them against the SavedModel, as TF Serving does.
- ``write_models_config(base_dir)``: ``<base_dir>/models.config`` listing every model base path
  under ``base_dir`` with at least one complete version, for ``tensorflow_model_server
  --model_config_file``. Paths are written as ``/models/<name>`` (mount ``saved_models`` at
  ``/models``), or absolute with ``absolute=True``.
- ``describe(path)``: signatures and versions of one model or of a whole ``saved_models`` folder,
  read from ``saved_model.pb`` without loading any ops (so it works on ScaNN exports too); each
  version is reported complete or incomplete with the reason, never failing the whole listing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from tfrs_app.io import atomic_write_text

WARMUP = "assets.extra/tf_serving_warmup_requests"


def write_warmup(version_dir: str | os.PathLike, model_name: str, signatures: Sequence[str],
                 inputs: Mapping[str, np.ndarray]) -> Path:
    """One PredictRequest per signature with ``inputs`` (numpy arrays by input name)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = Path(version_dir) / WARMUP
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in signatures:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup(version_dir: str | os.PathLike) -> list[tuple[str, str, dict[str, np.ndarray]]]:
    """[(model name, signature, {input: array})] from a version's warmup file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(version_dir) / WARMUP
    if not path.exists():
        raise FileNotFoundError(f"{path}: no warmup records")
    out = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        out.append((request.model_spec.name, request.model_spec.signature_name,
                    {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}))
    return out


def replay_warmup(version_dir: str | os.PathLike) -> int:
    """Runs every warmup request against the SavedModel; returns how many ran."""
    import tensorflow as tf

    from tfrs_app.serving.load import load_saved_model

    model = load_saved_model(version_dir)
    records = read_warmup(version_dir)
    for _, signature, inputs in records:
        model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return len(records)


def model_dirs(base_dir: str | os.PathLike) -> list[Path]:
    """Model base paths under ``base_dir``: folders holding at least one complete integer version."""
    return sorted(_newest_complete_versions(base_dir))


def _newest_complete_versions(base_dir: str | os.PathLike) -> dict[Path, Path]:
    """{model base path: its newest complete version} for every model under ``base_dir`` that has one."""
    from tfrs_app.serving.load import newest_complete

    base = Path(base_dir)
    if not base.is_dir():
        return {}
    newest = {p: newest_complete(p)[0] for p in base.iterdir() if p.is_dir()}
    return {model: version for model, version in newest.items() if version is not None}


def write_models_config(base_dir: str | os.PathLike, absolute: bool = False) -> Path:
    """``<base_dir>/models.config`` with every model base path (TF Serving serves each one's latest
    version), and ``models.stock.config`` without the ones that need ScaNN's ops, for stock
    ``tensorflow/serving`` images. Returns the first path."""
    from tfrs_app.serving.load import metadata

    base = Path(base_dir)
    newest = _newest_complete_versions(base)  # each version's saved_model.pb parsed once
    models = sorted(newest)
    stock = [m for m in models if not metadata(newest[m]).get("requires_scann")]
    for name, chosen in (("models.config", models), ("models.stock.config", stock)):
        entries = [f'  config {{\n    name: "{m.name}"\n    base_path: "{m.resolve() if absolute else "/models/" + m.name}"\n'
                   f'    model_platform: "tensorflow"\n  }}\n' for m in chosen]
        atomic_write_text(base / name, "model_config_list {\n" + "".join(entries) + "}\n")
    return base / "models.config"


def describe(path: str | os.PathLike) -> str:
    """Versions, metadata and signatures of a model base path, a version folder, or a folder of models."""
    from tfrs_app.serving.load import version_dirs, version_problem

    path = Path(path)
    if (path / "saved_model.pb").exists() or (path.is_dir() and path.name.isdigit() and not version_dirs(path)):
        problem = version_problem(path)  # a version folder
        return f"{path}: INCOMPLETE ({problem})" if problem else _describe_version(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such SavedModel, model base path or models folder")
    if version_dirs(path):
        return _describe_model(path)
    models = sorted(p for p in path.iterdir() if p.is_dir() and version_dirs(p))
    if not models:
        raise FileNotFoundError(f"{path}: holds no SavedModel versions")
    parts = [_describe_model(model) for model in models]
    config = path / "models.config"
    if config.exists():
        parts.append(f"{config}: lists {config.read_text().count('name:')} models")
    return "\n\n".join(parts)


def _describe_model(model: Path) -> str:
    """Each version, complete or why not; the one TF Serving serves; the newest complete in full.

    TF Serving serves the highest integer version whatever it holds, so an incomplete highest
    version fails there, while ``load_saved_model`` falls back to the newest complete one.
    """
    from tfrs_app.serving.load import version_dirs, version_problem

    versions = version_dirs(model)
    problems = {v: version_problem(v) for v in versions}
    complete = [v for v in versions if problems[v] is None]
    lines = [f"{model}: versions {[int(v.name) for v in versions]} (TF Serving serves {versions[-1].name})"]
    for version in versions:
        state = "complete" if problems[version] is None else f"INCOMPLETE ({problems[version]})"
        if version == versions[-1] and problems[version]:
            state += ": TF Serving picks this one and fails on it; remove it or export again"
        lines.append(f"  version {version.name}: {state}")
    if not complete:
        return "\n".join(lines + ["  no complete version: nothing here can be loaded"])
    if complete[-1] != versions[-1]:
        lines.append(f"  tfrs_app's loader uses version {complete[-1].name}, the newest complete one")
    return "\n".join(lines + [_describe_version(complete[-1])])


def _describe_version(version: Path) -> str:
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    from tfrs_app.serving.load import ModelLoadError, metadata

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((version / "saved_model.pb").read_bytes())
    except Exception as error:  # noqa: BLE001  a truncated or foreign file
        raise ModelLoadError(f"{version}: saved_model.pb does not parse ({error})") from error
    meta = metadata(version)
    lines = [f"{version}: model {meta.get('model', '?')}, created {meta.get('created', '?')}, "
             f"{'needs ScaNN ops (import scann)' if meta.get('requires_scann') else 'stock TensorFlow ops'}, "
             f"warmup {'yes' if (version / WARMUP).exists() else 'no'}"]
    for graph in proto.meta_graphs:
        for name, signature in sorted(graph.signature_def.items()):
            if name.startswith("__"):
                continue
            lines.append(f"  signature {name}:")
            for kind, tensors in (("in ", signature.inputs), ("out", signature.outputs)):
                for key, info in sorted(tensors.items()):
                    dims = [d.size for d in info.tensor_shape.dim]
                    dtype = types_pb2.DataType.Name(info.dtype).replace("DT_", "").lower()
                    lines.append(f"    {kind} {key:26s} {dtype:7s} {dims}")
    return "\n".join(lines)
