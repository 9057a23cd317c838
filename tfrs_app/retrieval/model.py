"""The two-tower retrieval model: towers and task are separate; the model wires them.

Loss: ``tfrs.tasks.Retrieval``, an in-batch sampled softmax over the batch's candidates, with

- logQ correction: in-batch negatives are drawn in proportion to item frequency, so popular
  items are over-penalised; subtracting log(sampling probability) from each candidate's logit
  (Yi et al., RecSys 2019) removes that bias. Probabilities come from training frequencies;
- accidental-hit removal: a batch row whose candidate is the same item as the positive is not
  counted as a negative;
- temperature: logits are divided by it (useful with L2-normalised towers, whose dot products
  lie in [-1, 1]).

- negatives beyond the batch (``negatives.py``): sampled catalog rows appended to the batch's
  candidates, logQ from the mixture probability, optionally only the hardest sampled rows.

Top-K metrics are not computed per training batch (they score the whole catalog); see
``evaluate.py``.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_app.config import RetrievalConfig
from tfrs_app.features.examples import candidate_features
from tfrs_app.features.space import FeatureSpace
from tfrs_app.retrieval.negatives import NegativeSampler, hard_negative_mask, mixture_probability, sampling_distribution
from tfrs_app.retrieval.towers import CandidateTower, QueryTower


class RetrievalModel(tfrs.Model):
    """features -> loss. features holds query inputs, candidate inputs and ``item_probability`` [B].

    With a ``sampler``, each step's candidates are the B batch rows then S sampled rows [B + S];
    ``num_hard_negatives`` > 0 keeps, per query, only that many of the sampled rows.
    """

    def __init__(self, query_tower: QueryTower, candidate_tower: CandidateTower, temperature: float = 0.1,
                 use_logq: bool = True, remove_accidental_hits: bool = True,
                 sampler: Optional[NegativeSampler] = None, num_hard_negatives: int = 0,
                 sampled_logq: str = "mixture"):
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = tfrs.tasks.Retrieval(temperature=None if temperature == 1.0 else temperature,
                                         remove_accidental_hits=remove_accidental_hits)
        self.use_logq = use_logq
        self.remove_accidental_hits = remove_accidental_hits
        self.sampler = sampler
        self.num_hard_negatives = num_hard_negatives
        self.sampled_logq = sampled_logq

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query = self.query_tower(features, training=training)
        candidate = self.candidate_tower(features, training=training)
        ids, probability, mask = features["item_id"], features["item_probability"], None
        if self.sampler is not None and training:
            sampled, sampled_p, sampled_q, batch_q = self.sampler(ids)
            sampled_candidate = self.candidate_tower(sampled, training=training)
            batch = tf.shape(ids)[0]
            if self.num_hard_negatives:
                mask = hard_negative_mask(query, sampled_candidate, ids, sampled["item_id"], batch,
                                          self.num_hard_negatives)
            probability = tf.concat([probability, sampled_p], 0)  # p: in-batch frequency of every column
            if self.sampled_logq == "mixture":
                probability = mixture_probability(probability, tf.concat([batch_q, sampled_q], 0), batch,
                                                  self.sampler.num_sampled)
            candidate = tf.concat([candidate, sampled_candidate], 0)
            ids = tf.concat([ids, sampled["item_id"]], 0)
        return self.task(
            query,
            candidate,
            candidate_sampling_probability=probability if self.use_logq else None,
            candidate_ids=ids if self.remove_accidental_hits else None,
            compute_metrics=False,
            score_mask=mask,
            sample_weight=features.get("sample_weight") if training else None,
        )


def build_model(cfg: RetrievalConfig, space: FeatureSpace, seed: int = 0, catalog: Optional[pd.DataFrame] = None,
                decay_steps: Optional[int] = None) -> RetrievalModel:
    """The one place a retrieval config becomes layers.

    ``catalog`` (the items to draw sampled negatives from) is needed only to train with
    ``num_sampled_negatives``; ``decay_steps`` (optimizer steps to decay over) only for a
    decaying ``lr_schedule``. A model rebuilt to load weights needs neither (the sampler holds
    no variables).
    """
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
        history_dropout=cfg.history_dropout,
        history_encoder=cfg.history_encoder,
        history_length=space.history_length,
        time_range=space.time_range,
        use_time=cfg.use_time,
        l2_normalize=cfg.l2_normalize,
        item_bias=cfg.item_bias,
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
        item_bias=cfg.item_bias,
        seed=seed,
        name="candidate_tower",
    )
    sampler = None
    if cfg.num_sampled_negatives and catalog is not None:
        counts = dict(zip(space.item_ids, space.item_counts))
        catalog_counts = np.array([counts.get(i, 0) for i in catalog["item_id"]], dtype=np.float64)
        sampler = NegativeSampler(candidate_features(catalog), space.item_probability(catalog["item_id"].to_numpy()),
                                  sampling_distribution(catalog_counts, cfg.negative_sampling, cfg.negative_alpha),
                                  cfg.num_sampled_negatives, seed=seed)
    model = RetrievalModel(query, candidate, cfg.temperature, cfg.use_logq, cfg.remove_accidental_hits,
                           sampler, cfg.num_hard_negatives, cfg.sampled_logq)
    learning_rate = cfg.learning_rate
    if cfg.lr_schedule == "cosine" and decay_steps:
        learning_rate = tf.keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps, alpha=0.1)
    optimizer = (tf.keras.optimizers.Adagrad if cfg.optimizer == "adagrad" else tf.keras.optimizers.Adam)
    model.compile(optimizer=optimizer(learning_rate=learning_rate))
    return model


def embed(tower: tf.keras.Model, features: Mapping, batch_size: int = 4096) -> np.ndarray:
    """Runs a tower over numpy features in batches (inference mode); returns [N, D] float32."""
    n = len(next(iter(features.values())))
    out = []
    for start in range(0, n, batch_size):
        batch = {k: tf.constant(v[start:start + batch_size]) for k, v in features.items()}
        out.append(tower(batch, training=False).numpy())
    return np.concatenate(out)
