"""The two-tower retrieval model: towers and task are separate; the model wires them.

Loss: ``tfrs.tasks.Retrieval``, an in-batch sampled softmax over the batch's candidates, with

- logQ correction: in-batch negatives are drawn in proportion to item frequency, so popular
  items are over-penalised; subtracting log(sampling probability) from each candidate's logit
  (Yi et al., RecSys 2019) removes that bias. Probabilities come from training frequencies;
- accidental-hit removal: a batch row whose candidate is the same item as the positive is not
  counted as a negative;
- temperature: logits are divided by it (useful with L2-normalised towers, whose dot products
  lie in [-1, 1]).

Top-K metrics are not computed per training batch (they score the whole catalog); see
``evaluate.py``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_app.config import RetrievalConfig
from tfrs_app.features.space import FeatureSpace
from tfrs_app.retrieval.towers import CandidateTower, QueryTower


class RetrievalModel(tfrs.Model):
    """features -> loss. features holds query inputs, candidate inputs and ``item_probability`` [B]."""

    def __init__(self, query_tower: QueryTower, candidate_tower: CandidateTower, temperature: float = 0.1,
                 use_logq: bool = True, remove_accidental_hits: bool = True):
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = tfrs.tasks.Retrieval(temperature=None if temperature == 1.0 else temperature,
                                         remove_accidental_hits=remove_accidental_hits)
        self.use_logq = use_logq
        self.remove_accidental_hits = remove_accidental_hits

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query = self.query_tower(features, training=training)
        candidate = self.candidate_tower(features, training=training)
        return self.task(
            query,
            candidate,
            candidate_sampling_probability=features["item_probability"] if self.use_logq else None,
            candidate_ids=features["item_id"] if self.remove_accidental_hits else None,
            compute_metrics=False,
        )


def build_model(cfg: RetrievalConfig, space: FeatureSpace, seed: int = 0) -> RetrievalModel:
    """The one place a retrieval config becomes layers."""
    query = QueryTower(
        user_vocabulary=space.user_ids,
        item_vocabulary=space.item_ids,
        user_feature_vocabs=space.user_features if cfg.use_user_features else {},
        time_mean=space.time_mean,
        time_std=space.time_std,
        time_boundaries=space.time_boundaries,
        embedding_dim=cfg.embedding_dim,
        hidden_layers=cfg.hidden_layers,
        output_dim=cfg.output_dim,
        id_dropout=cfg.id_dropout,
        use_history=cfg.use_history,
        use_time=cfg.use_time,
        l2_normalize=cfg.l2_normalize,
        seed=seed,
        name="query_tower",
    )
    candidate = CandidateTower(
        item_vocabulary=space.item_ids,
        title_vocabulary=space.title_tokens,
        genre_vocabulary=space.genres,
        embedding_dim=cfg.embedding_dim,
        hidden_layers=cfg.hidden_layers,
        output_dim=cfg.output_dim,
        id_dropout=cfg.id_dropout,
        use_text=cfg.use_text,
        use_genres=cfg.use_genres,
        l2_normalize=cfg.l2_normalize,
        seed=seed,
        name="candidate_tower",
    )
    model = RetrievalModel(query, candidate, cfg.temperature, cfg.use_logq, cfg.remove_accidental_hits)
    optimizer = (tf.keras.optimizers.Adagrad if cfg.optimizer == "adagrad" else tf.keras.optimizers.Adam)
    model.compile(optimizer=optimizer(learning_rate=cfg.learning_rate))
    return model


def embed(tower: tf.keras.Model, features: Mapping, batch_size: int = 4096) -> np.ndarray:
    """Runs a tower over numpy features in batches (inference mode); returns [N, D] float32."""
    n = len(next(iter(features.values())))
    out = []
    for start in range(0, n, batch_size):
        batch = {k: tf.constant(v[start:start + batch_size]) for k, v in features.items()}
        out.append(tower(batch, training=False).numpy())
    return np.concatenate(out)
