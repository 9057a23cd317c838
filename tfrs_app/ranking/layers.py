"""Ranker building blocks: MC dropout, heads whose sampled part is separable, MMoE.

MC dropout (Gal and Ghahramani 2016) here is a layer of its own, not ``model(x, training=True)``,
which would also switch on id dropout, BatchNorm and anything else that behaves differently in
training. ``MCDropout`` samples only when it is handed uniform noise explicitly; the noise
comes from ``tf.random.stateless_uniform`` under a seed, so a sampled prediction is
reproducible and the vectorised sampler can be checked against T separate passes.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tfrs_app  # noqa: F401
import tensorflow as tf


class MCDropout(tf.keras.layers.Layer):
    """Dropout that is on in training and, at inference, only when ``noise`` is given.

    noise: uniform [0, 1) values of x's shape (or broadcastable), one draw per sample; units
    whose noise is below ``rate`` are dropped and the rest scaled by 1 / (1 - rate), exactly as
    training dropout does. Without noise and outside training the layer is the identity, so the
    deterministic path gives identical outputs on repeated calls.
    """

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"MCDropout.rate: must be in (0, 1), got {rate}")
        self.rate = float(rate)

    def call(self, x: tf.Tensor, training: Optional[bool] = None, noise: Optional[tf.Tensor] = None) -> tf.Tensor:
        if noise is not None:
            keep = tf.cast(noise >= self.rate, x.dtype)
            return x * keep / (1.0 - self.rate)
        if training:
            return tf.nn.dropout(x, self.rate)
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}


class Head(tf.keras.layers.Layer):
    """[B, D] -> [B] logit: Dense(h_1, relu), MCDropout, ..., Dense(h_k, relu), MCDropout, Dense(1).

    Split in two so MC sampling can reuse the deterministic part:
    ``prefix`` (the first Dense, [B, h_1]) runs once; ``suffix`` takes [..., B, h_1] with one
    noise tensor per MCDropout ([T, 1, h_i]: one mask per sample) and returns [..., B] logits. With one hidden layer,
    a sample costs one [h_1] x [h_1, 1] product per row.
    """

    def __init__(self, hidden_layers: Sequence[int], dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [tf.keras.layers.Dense(size, activation="relu") for size in hidden_layers]
        self.dropouts = [MCDropout(dropout) for _ in hidden_layers]
        self.out = tf.keras.layers.Dense(1)

    @property
    def noise_widths(self) -> tuple[int, ...]:
        """The last dimension of each MCDropout's noise, in order."""
        return tuple(layer.units for layer in self.hidden)

    def prefix(self, x: tf.Tensor) -> tf.Tensor:
        return self.hidden[0](x)

    def suffix(self, z: tf.Tensor, training: Optional[bool] = None,
               noise: Optional[Sequence[tf.Tensor]] = None) -> tf.Tensor:
        for i, dropout in enumerate(self.dropouts):
            z = dropout(z, training=training, noise=None if noise is None else noise[i])
            if i + 1 < len(self.hidden):
                z = self.hidden[i + 1](z)
        return tf.squeeze(self.out(z), -1)

    def call(self, x: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        return self.suffix(self.prefix(x), training=training)


def mlp(sizes: Sequence[int], name: str) -> tf.keras.Sequential:
    return tf.keras.Sequential([tf.keras.layers.Dense(s, activation="relu") for s in sizes], name=name)


class MMoE(tf.keras.layers.Layer):
    """Multi-gate mixture of experts (Ma et al., KDD 2018): [B, D] -> {head: [B, H]}.

    ``num_experts`` MLPs share the input; each head mixes their outputs with its own softmax
    gate over the input, so heads that disagree (engagement vs satisfaction) can use different
    experts instead of fighting over one trunk.
    """

    def __init__(self, heads: Sequence[str], num_experts: int, expert_layers: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.experts = [mlp(expert_layers, name=f"expert_{e}") for e in range(num_experts)]
        self.gates = {head: tf.keras.layers.Dense(num_experts, activation="softmax", name=f"gate_{head}")
                      for head in heads}

    def call(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        experts = tf.stack([expert(x) for expert in self.experts], axis=1)  # [B, E, H]
        return {head: tf.einsum("be,beh->bh", gate(x), experts) for head, gate in self.gates.items()}
