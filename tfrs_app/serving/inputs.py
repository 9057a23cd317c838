"""Input checks at the top of every served signature, with errors that name the input.

A signature's ``tf.TensorSpec`` shapes are not enforced where requests arrive: a loaded
SavedModel's signature, the in-process concrete function and TF Serving's session all feed a
rank-1 ``history`` through, and the request dies deep inside the towers with
``ConcatOp : Ranks of all input tensors should match`` (or a user_id [3] against a history
[2, L] with ``Dimension 0 in both shapes must be equal``), naming no input. So each server
runs these asserts first, on the tensors as they are at run time:

- rank: every input has the rank of its spec (history [B, L], everything else [B]);
- batch: every input's first dimension equals ``user_id``'s B (or the first input's);
- timestamp: Unix seconds in [0, MAX_SECONDS) (MAX_SECONDS is 2300-01-01): a millisecond
  value (1.7e12) or a negative one is refused rather than clipped to the training range,
  which would silently serve the model's last period.

A failed check is an ``InvalidArgumentError`` ("assertion failed: [history: expected [B, L]
string, got rank 1]"), which TF Serving returns as INVALID_ARGUMENT with that text.
"""
from __future__ import annotations

from typing import Mapping

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.data.schema import MAX_SECONDS  # 2300-01-01: the same bound the data edge applies

_DIMS = ("B", "L")


def _expected(spec: tf.TensorSpec) -> str:
    """'[B, L] string' for a [None, None] string spec."""
    return f"[{', '.join(_DIMS[:spec.shape.rank])}] {spec.dtype.name}"


def _runtime_rank(x: tf.Tensor) -> tf.Tensor:
    """int32 scalar: the rank of ``x`` as fed. Inside a signature every input's static rank is
    the spec's, and grappler folds ``tf.rank`` (even a raw Rank or Size(Shape) op) into that
    constant, so a rank-1 ``history`` would pass. The count of ``where(shape >= 0)`` rows is
    the length of the runtime shape vector, which no static shape can fold."""
    return tf.shape(tf.where(tf.shape(x) >= 0), out_type=tf.int32)[0]


def check_query_inputs(features: Mapping[str, tf.Tensor], specs: Mapping[str, tf.TensorSpec]) -> list:
    """Assert ops for ``features`` (the signature's inputs, by name) against ``specs`` (the same
    names; each spec's rank is the expected one): one per input's rank, then (after those: a
    scalar has no batch dimension) one for the batch sizes, all equal to ``user_id``'s B (the
    first spec's where there is no ``user_id``: ``item_ids`` of the related-items server), and
    one for the timestamp range when there is a ``timestamp``."""
    ranks = []
    for name, spec in specs.items():
        rank = _runtime_rank(features[name])
        ranks.append(tf.debugging.Assert(tf.equal(rank, spec.shape.rank), [
            tf.strings.format(f"{name}: expected {_expected(spec)}, got rank {{}}", rank)]))
    with tf.control_dependencies(ranks):
        first = "user_id" if "user_id" in specs else next(iter(specs))  # the input whose rows the others follow
        names = [first, *(n for n in specs if n != first)]
        sizes = [tf.shape(features[n], out_type=tf.int64)[0] for n in names]
        listed = ", ".join(f"{n} {{}}" for n in names)
        checks = ranks + [tf.debugging.Assert(tf.reduce_all(tf.equal(tf.stack(sizes), sizes[0])), [tf.strings.format(
            f"batch sizes differ: {listed} (every input has one row per {first})", sizes)])]
        if "timestamp" in features:
            stamp = tf.cast(features["timestamp"], tf.int64)
            bad = (stamp < 0) | (stamp >= MAX_SECONDS)
            hint = tf.where(tf.reduce_any(stamp >= MAX_SECONDS), " (milliseconds?)", "")
            checks.append(tf.debugging.Assert(~tf.reduce_any(bad), [tf.strings.join([tf.strings.format(
                f"timestamp: expected Unix seconds in [0, {MAX_SECONDS}), got {{}}", tf.boolean_mask(stamp, bad)),
                hint])]))
    return checks


def checked(features: Mapping[str, tf.Tensor], specs: Mapping[str, tf.TensorSpec]) -> dict[str, tf.Tensor]:
    """``features`` as identities that run after ``check_query_inputs``: anything computed from
    them sees only inputs that passed (inside a tf.function asserts run, but in no fixed order)."""
    with tf.control_dependencies(check_query_inputs(features, specs)):
        return {name: tf.identity(value) for name, value in features.items()}
