"""The multi-head ranker: features -> trunk (shared MLP or MMoE) -> one logit per head.

Heads and what their labels mean (ARCHITECTURE.md section 2):

- engagement: the user acts on the item; logged events against sampled unengaged impressions;
- satisfaction: the user is glad of it, learned only where the user engaged (masked elsewhere);
- responsibility: the item is appropriate to show this user.

Each head is a ``tfrs.tasks.Ranking`` with binary cross-entropy on logits. Missing labels
arrive as weight 0 (masked, never zero-filled); per-head sample weights from the data multiply
in, and per-head loss weights scale each task's loss.

Where the log has a ``position`` column, a shallow bias tower (position embedding -> one
logit) is added to the engagement logit in training only: it soaks up position bias, and is
dropped at serving, where the item's position is what we are deciding.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import tfrs_app  # noqa: F401
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_app.config import HEADS, RankerConfig
from tfrs_app.features.space import FeatureSpace
from tfrs_app.ranking.layers import MMoE, Head, mlp
from tfrs_app.retrieval.towers import CandidateTower, QueryTower


class MultiHeadRanker(tfrs.Model):
    """features -> {head: logit [B]}.

    features: the query inputs (user_id, user_<f>, timestamp, history [B, L]) and candidate
    inputs (item_id, item_title, item_genres) of ``features/examples.py``; for training also
    ``label_<head>`` and ``weight_<head>`` [B] float32 and optionally ``position`` [B] int64
    (-1 = unknown).
    """

    def __init__(self, query_encoder: QueryTower, candidate_encoder: CandidateTower, trunk: tf.keras.layers.Layer,
                 heads: Sequence[str] = HEADS, head_layers: Sequence[int] = (64,), dropout: float = 0.2,
                 loss_weights: Optional[Mapping[str, float]] = None, position_buckets: int = 0):
        super().__init__()
        self.query_encoder = query_encoder
        self.candidate_encoder = candidate_encoder
        self.trunk = trunk
        self.head_names = tuple(heads)
        self.heads = {h: Head(head_layers, dropout, name=f"head_{h}") for h in heads}
        self.loss_weights = {h: float((loss_weights or {}).get(h, 1.0)) for h in heads}
        self.tasks = {
            h: tfrs.tasks.Ranking(loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                                  metrics=[tf.keras.metrics.AUC(from_logits=True, name=f"{h}_auc")], name=f"task_{h}")
            for h in heads
        }
        self.position_buckets = int(position_buckets)
        self.position_bias = None
        if position_buckets:
            self.position_bias = tf.keras.Sequential([tf.keras.layers.Embedding(position_buckets + 1, 8),
                                                      tf.keras.layers.Dense(1)], name="position_bias")

    def trunk_outputs(self, features: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> dict[str, tf.Tensor]:
        """{head: [B, H]}: the deterministic representation each head starts from (computed once per request)."""
        query = self.query_encoder(features, training=training)
        candidate = self.candidate_encoder(features, training=training)
        x = tf.concat([query, candidate, query * candidate], axis=1)
        hidden = self.trunk(x)
        return hidden if isinstance(hidden, dict) else {h: hidden for h in self.head_names}

    def call(self, features: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> dict[str, tf.Tensor]:
        hidden = self.trunk_outputs(features, training=training)
        return {h: self.heads[h](hidden[h], training=training) for h in self.head_names}

    def position_logit(self, position: tf.Tensor) -> tf.Tensor:
        """[B] int64 positions (-1 unknown) -> [B] bias logit."""
        bucket = tf.clip_by_value(tf.cast(position, tf.int64) + 1, 0, self.position_buckets)
        return tf.squeeze(self.position_bias(bucket), -1)

    def training_logits(self, features: Mapping[str, tf.Tensor], training: bool = True) -> dict[str, tf.Tensor]:
        """``call``'s logits plus, when the features carry ``position``, the position bias on engagement."""
        logits = self(features, training=training)
        if self.position_bias is not None and "position" in features:
            logits["engagement"] = logits["engagement"] + self.position_logit(features["position"])
        return logits

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        logits = self.training_logits(features, training=training)
        losses = [
            self.loss_weights[h] * self.tasks[h](labels=features[f"label_{h}"][:, None], predictions=logits[h][:, None],
                                                 sample_weight=features[f"weight_{h}"], training=training)
            for h in self.head_names
        ]
        return tf.add_n(losses)


def build_ranker(cfg: RankerConfig, space: FeatureSpace, position_buckets: int = 0, seed: int = 0) -> MultiHeadRanker:
    """The one place a ranker config becomes layers (feature encoders reuse the retrieval towers)."""
    query = QueryTower(
        user_vocabulary=space.user_ids, item_vocabulary=space.item_ids,
        user_feature_vocabs=space.user_features if cfg.use_user_features else {},
        time_mean=space.time_mean, time_std=space.time_std, time_boundaries=space.time_boundaries,
        time_range=space.time_range,
        embedding_dim=cfg.embedding_dim, hidden_layers=(), output_dim=cfg.feature_dim, id_dropout=cfg.id_dropout,
        use_history=cfg.use_history, use_time=cfg.use_time, l2_normalize=False, seed=seed, name="query_encoder",
    )
    candidate = CandidateTower(
        item_vocabulary=space.item_ids, title_vocabulary=space.title_tokens, genre_vocabulary=space.genres,
        embedding_dim=cfg.embedding_dim, hidden_layers=(), output_dim=cfg.feature_dim, id_dropout=cfg.id_dropout,
        use_text=cfg.use_text, use_genres=cfg.use_genres, l2_normalize=False, seed=seed, name="candidate_encoder",
    )
    if cfg.trunk == "mmoe":
        trunk = MMoE(HEADS, cfg.num_experts, cfg.trunk_layers, name="mmoe")
    else:
        trunk = mlp(cfg.trunk_layers, name="trunk")
    model = MultiHeadRanker(query, candidate, trunk, HEADS, cfg.head_layers, cfg.dropout, cfg.loss_weights,
                            position_buckets if cfg.use_position else 0)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate))
    return model
