"""Monte Carlo dropout predictions: T samples per head, mean and std of the probability.

``mc_logits`` computes the trunk (feature encoders, shared MLP or MMoE, each head's first
Dense) once, and runs only the heads' sampled part with T noise
draws in one vectorised pass. ``naive_mc_logits`` runs the whole model T times with the same
noise, slice by slice: it exists to prove the two agree and to measure what the shortcut saves.

Sample t is one network drawn from the dropout posterior: one mask per MCDropout, shared by
every row of the request ([T, 1, width] noise). So a candidate's mean and std do not depend
on which other candidates share its request or on the batch size, and the noise costs
T x width uniforms instead of T x B x width (which was two thirds of the request time).
Noise is ``tf.random.stateless_uniform`` under (seed, head, layer), so the same seed gives the
same samples in Keras, in the exported SavedModel and in both samplers.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.ranking.model import MultiHeadRanker


def head_noise(model: MultiHeadRanker, num_samples: int, seed: int) -> dict[str, list[tf.Tensor]]:
    """{head: [uniform [T, 1, h_i] per MCDropout]}: one mask per sample, broadcast over the batch."""
    if num_samples < 2:
        raise ValueError(f"num_samples: MC dropout needs T >= 2 samples for a standard deviation, got {num_samples}")
    noise = {}
    for j, name in enumerate(model.head_names):
        widths = model.heads[name].noise_widths
        noise[name] = [tf.random.stateless_uniform([num_samples, 1, w], seed=[seed, 100 * j + i])
                       for i, w in enumerate(widths)]
    return noise


def mc_logits(model: MultiHeadRanker, features: Mapping[str, tf.Tensor], num_samples: int,
              seed: int = 0) -> dict[str, tf.Tensor]:
    """{head: [T, B] logits}: the trunk once, then T head samples in one pass."""
    hidden = model.trunk_outputs(features, training=False)
    noise = head_noise(model, num_samples, seed)
    out = {}
    for name in model.head_names:
        head = model.heads[name]
        z = head.prefix(hidden[name])  # [B, h_1], deterministic
        out[name] = head.suffix(z[None], noise=noise[name])  # [1, B, h_1] x [T, 1, h_1] masks -> [T, B]
    return out


def naive_mc_logits(model: MultiHeadRanker, features: Mapping[str, tf.Tensor], num_samples: int,
                    seed: int = 0) -> dict[str, tf.Tensor]:
    """Same samples as ``mc_logits`` the slow way: T full passes (encoders and trunk each time)."""
    noise = head_noise(model, num_samples, seed)
    samples = {name: [] for name in model.head_names}
    for t in range(num_samples):
        hidden = model.trunk_outputs(features, training=False)
        for name in model.head_names:
            head = model.heads[name]
            samples[name].append(head.suffix(head.prefix(hidden[name]), noise=[n[t] for n in noise[name]]))
    return {name: tf.stack(values) for name, values in samples.items()}


def summarize(logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """[T, B] logits -> (mean [B], std [B]) of the probabilities (population std over T)."""
    probs = tf.sigmoid(logits)
    return tf.reduce_mean(probs, axis=0), tf.math.reduce_std(probs, axis=0)


def predict(model: MultiHeadRanker, features: Mapping[str, np.ndarray], num_samples: int = 0, seed: int = 0,
            batch_size: int = 4096) -> dict[str, dict[str, np.ndarray]]:
    """Numpy features -> {head: {"score": [N], "std": [N]}} (MC mean/std), or {"score"} alone
    from the deterministic pass when ``num_samples`` is 0."""
    @tf.function(reduce_retracing=True)
    def deterministic(batch):
        return {h: tf.sigmoid(v) for h, v in model(batch, training=False).items()}

    @tf.function(reduce_retracing=True)
    def sampled(batch):
        return {h: summarize(v) for h, v in mc_logits(model, batch, num_samples, seed).items()}

    n = len(next(iter(features.values())))
    parts: dict[str, dict[str, list]] = {h: {"score": [], "std": []} for h in model.head_names}
    for start in range(0, n, batch_size):
        batch = {k: tf.constant(v[start:start + batch_size]) for k, v in features.items()}
        if num_samples:
            for h, (mean, std) in sampled(batch).items():
                parts[h]["score"].append(mean.numpy())
                parts[h]["std"].append(std.numpy())
        else:
            for h, prob in deterministic(batch).items():
                parts[h]["score"].append(prob.numpy())
    return {h: {k: np.concatenate(v) for k, v in p.items() if v} for h, p in parts.items()}
