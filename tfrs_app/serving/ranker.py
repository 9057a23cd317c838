"""The ranker SavedModel: deterministic scores, and MC-dropout scores with decisions.

``<base_dir>/ranker/<version>/`` (TF-Serving layout, same atomic versioning as retrieval).
Stock TensorFlow ops only. Inputs, one row per (user, candidate) pair, all batched [B]:

    user_id, timestamp (int64), history [B, L] (most recent first, "" pads), user_<f>...,
    item_id, item_title, item_genres ("|"-joined)

Every input is checked first (``serving/inputs.py``): ranks, one batch size, timestamps in seconds.

Signatures:

- ``serving_default`` (deterministic, dropout off): ``<head>`` [B] float32 probability for
  engagement, satisfaction, responsibility.
- ``predict_with_uncertainty``: T = ``num_samples`` MC-dropout samples of the heads (trunk once,
  stateless noise under a fixed seed, so a request always gets the same answer) and, per head:
  ``<head>_mean``, ``<head>_std`` [B] float32, ``<head>_bucket`` [B] int64 (number of bucket
  edges <= std, i.e. numpy's ``searchsorted(edges, std, side="right")``) and
  ``<head>_decision`` [B] bool (mean >= that bucket's threshold). Edges and thresholds are the
  saved ``ThresholdTable`` of each head, baked into the graph as float32 constants.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.decision.thresholds import ThresholdTable
from tfrs_app.ranking.model import MultiHeadRanker
from tfrs_app.ranking.uncertainty import mc_logits, summarize
from tfrs_app.serving.export import query_specs
from tfrs_app.serving.inputs import checked

CANDIDATE_INPUTS = ("item_id", "item_title", "item_genres")


def decide(mean: tf.Tensor, std: tf.Tensor, edges: tf.Tensor, thresholds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(bucket, decision) of ThresholdTable.decide in graph ops; any shape, float32 edges [E]."""
    bucket = tf.reduce_sum(tf.cast(std[..., None] >= edges, tf.int64), axis=-1)
    return bucket, mean >= tf.gather(thresholds, bucket)


class RankerServer(tf.Module):
    def __init__(self, model: MultiHeadRanker, tables: Mapping[str, ThresholdTable], user_features: Sequence[str],
                 num_samples: int, seed: int = 0):
        super().__init__(name="ranker_server")
        if num_samples < 2:
            raise ValueError(f"num_samples: MC dropout needs T >= 2 samples, got {num_samples}")
        missing = [h for h in model.head_names if h not in tables]
        if missing:
            raise ValueError(f"tables: no ThresholdTable for head {missing[0]!r}")
        self.model = model
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.edges = {h: tf.constant(tables[h].edges, tf.float32, shape=[len(tables[h].edges)]) for h in model.head_names}
        self.thresholds = {h: tf.constant(tables[h].thresholds, tf.float32) for h in model.head_names}
        self.input_specs = {**query_specs(user_features),
                            **{name: tf.TensorSpec([None], tf.string, name=name) for name in CANDIDATE_INPUTS}}
        self.serve = tf.function(self._serve)
        self.sample = tf.function(self._sample)

    def _serve(self, features):
        features = checked(features, self.input_specs)
        return {h: tf.sigmoid(logit) for h, logit in self.model(features, training=False).items()}

    def _sample(self, features):
        features = checked(features, self.input_specs)
        out = {}
        for head, logits in mc_logits(self.model, features, self.num_samples, self.seed).items():
            mean, std = summarize(logits)
            bucket, decision = decide(mean, std, self.edges[head], self.thresholds[head])
            out[f"{head}_mean"] = mean
            out[f"{head}_std"] = std
            out[f"{head}_bucket"] = bucket
            out[f"{head}_decision"] = decision
        return out

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(self.input_specs),
                "predict_with_uncertainty": self.sample.get_concrete_function(self.input_specs)}
