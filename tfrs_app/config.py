"""Run configuration: frozen dataclasses, read from YAML, validated once, saved with each run.

A config is plain data. It becomes objects (datasets, towers, indexes) in exactly one place
per stage (``retrieval.train.build_model``, ``retrieval.index.build_indexes``), so every layer
keeps typed constructor arguments and never sees a config object.

``load_config(path, overrides)`` is the only entry point: it rejects unknown keys and values of
the wrong type or range with a ``ConfigError`` naming the dotted field, e.g.
``retrieval.temperature: must be > 0, got -1``.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown, mistyped or out of range."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and strengths of the planted structure in the synthetic generator."""

    num_users: int = 3000
    num_items: int = 2000
    mean_interactions_per_user: float = 40.0
    latent_dim: int = 8
    affinity_strength: float = 3.0  # scale of user.item in the choice logits
    popularity_strength: float = 1.0  # std of the log-popularity bias
    num_genres: int = 12
    unsafe_fraction: float = 0.05
    seed: int = 0

    def validate(self, where: str) -> None:
        _positive(where, "num_users", self.num_users)
        _positive(where, "num_items", self.num_items)
        _positive(where, "mean_interactions_per_user", self.mean_interactions_per_user)
        _positive(where, "latent_dim", self.latent_dim)
        _positive(where, "num_genres", self.num_genres)
        if not 0.0 <= self.unsafe_fraction < 1.0:
            raise ConfigError(f"{where}.unsafe_fraction: must be in [0, 1), got {self.unsafe_fraction}")


@dataclass(frozen=True)
class DelayedSyntheticConfig:
    """Sizes and strengths of the synthetic delayed-conversion log (``tfrs_app/feedback/synthetic.py``)."""

    num_users: int = 500
    num_items: int = 200
    days: float = 40.0
    impressions_per_day: float = 1500.0
    latent_dim: int = 4
    base_logit: float = -2.0  # conversion logit offset: sets the eventual positive rate (~0.2 by default)
    mean_delay_days: float = 16.0  # mean conversion delay; each item's own mean varies around it
    attribution_days: float = 30.0  # conversions later than this after the impression do not count
    seed: int = 0

    def validate(self, where: str) -> None:
        for name in ("num_users", "num_items", "days", "impressions_per_day", "latent_dim", "mean_delay_days",
                     "attribution_days"):
            _positive(where, name, getattr(self, name))


@dataclass(frozen=True)
class DirectedSyntheticConfig:
    """Sizes of the synthetic log with a planted directed item graph (``tfrs_app/graph/synthetic.py``):
    ``num_groups`` product lines, each with ``levels`` levels of ``items_per_level`` items (level
    0 the bases, above them their accessories); every item below the top level has
    ``successors`` follow-on items at the next level of its group."""

    num_users: int = 3000
    num_groups: int = 20
    items_per_level: int = 10
    levels: int = 6
    successors: int = 8
    decay: float = 0.0  # the j-th follow-on of an item is chosen with weight 1 / j ** decay (0: uniform)
    journeys_per_user: float = 3.0  # Poisson mean: walks that start at a base item
    continue_probability: float = 0.9  # after each item, the walk goes on to a follow-on item
    noise_events_per_user: float = 1.0  # Poisson mean: base items bought on their own, any time
    mean_gap_days: float = 3.0  # exponential gap between the steps of a walk
    days: float = 365.0
    seed: int = 0

    def validate(self, where: str) -> None:
        for name in ("num_users", "num_groups", "items_per_level", "successors", "journeys_per_user", "mean_gap_days",
                     "days"):
            _positive(where, name, getattr(self, name))
        if self.levels < 2:
            raise ConfigError(f"{where}.levels: a directed structure needs >= 2 levels, got {self.levels}")
        _non_negative(where, "decay", self.decay)
        if self.successors > self.items_per_level:
            raise ConfigError(f"{where}.successors: must be <= items_per_level ({self.items_per_level}), "
                              f"got {self.successors}")
        if not 0.0 <= self.continue_probability <= 1.0:
            raise ConfigError(f"{where}.continue_probability: must be in [0, 1], got {self.continue_probability}")
        _non_negative(where, "noise_events_per_user", self.noise_events_per_user)


@dataclass(frozen=True)
class SequentialSyntheticConfig:
    """Sizes of the synthetic session log with planted sequential structure
    (``tfrs_app/sequences/synthetic.py``): a hidden Markov chain over ``num_clusters`` item
    clusters. Each cluster moves on to one of its ``successors`` next clusters with
    ``transition_strength`` (the rest of the mass spread over all clusters); the item shown is
    drawn from the current cluster by a Zipf popularity, never repeating within a session."""

    num_users: int = 2000
    num_items: int = 1000
    num_clusters: int = 25
    successors: int = 2
    transition_strength: float = 0.85
    sessions_per_user: float = 4.0  # Poisson mean (at least 1)
    mean_session_length: float = 8.0  # 2 + Poisson(mean - 2)
    zipf_exponent: float = 1.0  # item popularity inside a cluster ~ 1 / rank ** exponent
    mean_gap_seconds: float = 60.0  # between the events of a session
    days: float = 60.0
    seed: int = 0

    def validate(self, where: str) -> None:
        for name in ("num_users", "num_items", "num_clusters", "successors", "sessions_per_user", "mean_gap_seconds",
                     "days"):
            _positive(where, name, getattr(self, name))
        if self.successors > self.num_clusters:
            raise ConfigError(f"{where}.successors: must be <= num_clusters ({self.num_clusters}), got {self.successors}")
        if self.num_items < 2 * self.num_clusters:
            raise ConfigError(f"{where}.num_items: must be >= 2 * num_clusters ({2 * self.num_clusters}), "
                              f"got {self.num_items}")
        if not 0.0 <= self.transition_strength <= 1.0:
            raise ConfigError(f"{where}.transition_strength: must be in [0, 1], got {self.transition_strength}")
        if self.mean_session_length < 2:
            raise ConfigError(f"{where}.mean_session_length: must be >= 2, got {self.mean_session_length}")
        _non_negative(where, "zipf_exponent", self.zipf_exponent)


@dataclass(frozen=True)
class DataConfig:
    """Where interactions come from and how they are split.

    source: ``synthetic``, ``synthetic_delayed`` (impressions with delayed conversions, see
    ``feedback/``), ``synthetic_directed`` (a planted directed item graph, see ``graph/``),
    ``movielens/<variant>`` (100k, 1m, latest-small, 20m, 25m),
    ``csv`` or ``parquet`` (then ``path`` and optionally ``columns``, a mapping from our
    schema's names to the file's column names, and ``items_path`` for a catalog file).

    Reading a file (``data/tabular.py``; ``tfrs-app validate`` shows what was detected):
    ``delimiter`` (None: sniffed from the head of the file among , tab ; |), ``encoding``;
    ``timestamp_unit`` (auto: s, ms, us or ns by magnitude, one unit per column) and
    ``timestamp_format`` (strptime, e.g. ``%d/%m/%Y``; None: ISO 8601, or one day/month order
    proven by the data); ``id_type`` (str: ids exactly as written, ``00001`` stays ``00001``;
    int: ids are integers, so ``1``, ``01`` and ``1.0`` are one id); ``duplicates`` (exact
    duplicate rows: keep or drop, counted either way); ``labels_from_rating`` (derive the
    heads' labels from ``rating``: engagement 1 for every rated event, satisfaction = rating >=
    ``rating_satisfied``, responsibility = rating > ``rating_irresponsible``, the MovieLens mapping).
    """

    source: str = "synthetic"
    path: Optional[str] = None
    items_path: Optional[str] = None
    columns: Mapping[str, str] = field(default_factory=dict)
    data_dir: Optional[str] = None  # tfds data_dir
    manual_dir: Optional[str] = None  # tfds manual_dir: the MovieLens zip, for offline use
    delimiter: Optional[str] = None
    encoding: str = "utf-8"
    timestamp_unit: str = "auto"  # auto | s | ms | us | ns
    timestamp_format: Optional[str] = None
    id_type: str = "str"  # str | int
    duplicates: str = "keep"  # keep | drop
    labels_from_rating: bool = False
    rating_satisfied: float = 4.0
    rating_irresponsible: float = 1.0
    split: str = "time"  # time | random (fractions) | leave_last_out (val when val_fraction > 0) | session (days below)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    history_length: int = 20
    # Sessions (``data/sessions.py``): a ``session_id`` column in the log is used as given; without
    # one, a user's events more than ``session_gap_minutes`` apart start a new session. The
    # ``session`` split puts the sessions that end in the last ``session_test_days`` in test and
    # the ``session_val_days`` before them in validation (items unseen in training are dropped
    # from those sessions, then sessions shorter than 2 events).
    session_gap_minutes: float = 30.0
    session_test_days: float = 7.0
    session_val_days: float = 7.0
    seed: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    delayed: DelayedSyntheticConfig = field(default_factory=DelayedSyntheticConfig)
    directed: DirectedSyntheticConfig = field(default_factory=DirectedSyntheticConfig)
    sequential: SequentialSyntheticConfig = field(default_factory=SequentialSyntheticConfig)

    def validate(self, where: str) -> None:
        from tfrs_app.data.movielens import VARIANTS

        allowed = {"synthetic", "synthetic_delayed", "synthetic_directed", "synthetic_sequential", "csv", "parquet"} | {f"movielens/{v}" for v in VARIANTS}
        if self.source not in allowed:
            raise ConfigError(f"{where}.source: must be one of {sorted(allowed)}, got {self.source!r}")
        if self.source in ("csv", "parquet") and not self.path:
            raise ConfigError(f"{where}.path: required when source is {self.source!r}")
        from tfrs_app.data.schema import UNIT_SCALE
        from tfrs_app.data.splits import SPLITS

        for name, allowed_values in (("timestamp_unit", ("auto", *UNIT_SCALE)), ("id_type", ("str", "int")),
                                     ("duplicates", ("keep", "drop"))):
            if getattr(self, name) not in allowed_values:
                raise ConfigError(f"{where}.{name}: must be one of {list(allowed_values)}, got {getattr(self, name)!r}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ConfigError(f"{where}.delimiter: must be one character (e.g. ',' or '\\t'), got {self.delimiter!r}")
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"{where}.encoding: unknown encoding {self.encoding!r} (e.g. utf-8, latin-1)") from None
        if self.timestamp_format is not None and "%" not in self.timestamp_format:
            raise ConfigError(f"{where}.timestamp_format: a strptime format such as '%d/%m/%Y %H:%M', "
                              f"got {self.timestamp_format!r}")
        if self.rating_irresponsible >= self.rating_satisfied:
            raise ConfigError(f"{where}.rating_irresponsible: must be below rating_satisfied "
                              f"({self.rating_satisfied}), got {self.rating_irresponsible}")
        if self.split not in SPLITS:
            raise ConfigError(f"{where}.split: must be one of {list(SPLITS)}, got {self.split!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{where}.{name}: must be in [0, 1), got {value}")
        if self.test_fraction <= 0.0:
            raise ConfigError(f"{where}.test_fraction: must be > 0, got {self.test_fraction}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(f"{where}: val_fraction + test_fraction must be < 1")
        _positive(where, "history_length", self.history_length)
        for name in ("session_gap_minutes", "session_test_days"):
            _positive(where, name, getattr(self, name))
        _non_negative(where, "session_val_days", self.session_val_days)
        self.synthetic.validate(f"{where}.synthetic")
        self.delayed.validate(f"{where}.delayed")
        self.directed.validate(f"{where}.directed")
        self.sequential.validate(f"{where}.sequential")


@dataclass(frozen=True)
class RetrievalConfig:
    """Two-tower model and its training.

    The ``use_*`` switches turn features off; with all of them off, no hidden layers, no logQ,
    Adagrad at 0.1 and 32-dim embeddings, this is the TFRS tutorial's model (see
    ``pipelines/configs/tfrs_tutorial.yaml``).
    """

    embedding_dim: int = 64
    hidden_layers: tuple[int, ...] = (128,)
    output_dim: int = 64
    use_user_features: bool = True
    # The mean of the user's last history_length items in the query tower. Off by default: on
    # validation (ml-latest-small random and time protocols, the synthetic log) id + feature towers
    # without it reached a higher Recall@100 and nDCG@10; on leave-last-out it helps. Turn it on
    # to serve users the model has not trained on from their session (see README).
    use_history: bool = False
    # How the history becomes one vector (with use_history): ``mean`` of the item embeddings,
    # ``gru`` (the last state of a GRU read oldest to newest), or ``transformer`` (a causal
    # SASRec-style self-attention block, the newest position's output); ``retrieval/towers.py``.
    history_encoder: str = "mean"
    use_time: bool = True
    use_text: bool = True
    use_genres: bool = True
    time_buckets: int = 20
    # Replaces ids by OOV in training so unknown users/items get a learned vector. 0.1 over 0.3
    # by validation Recall@100 in all six dataset x protocol cells (README "Retrieval quality").
    id_dropout: float = 0.1
    # With use_history: blanks a row's whole history in training (the share given), so the query
    # cannot lean on it alone: on ml-latest-small validation, 0.5 beat 0 on the random and time
    # protocols and lost on leave-last-out (README "Retrieval model").
    history_dropout: float = 0.5
    use_logq: bool = True
    remove_accidental_hits: bool = True
    temperature: float = 0.2
    l2_normalize: bool = True
    # A learned scalar b_i per item added to the score (q . c + b_i, carried as one extra
    # embedding column, so indexes and exports are unchanged): with L2-normalised towers, the
    # item's prior cannot live in a vector norm. Chosen on validation: it raised Recall@100 and
    # nDCG@10 on ml-latest-small (random, time) and nDCG@10 on the synthetic log (README).
    item_bias: bool = True
    optimizer: str = "adam"  # adam | adagrad
    learning_rate: float = 0.003
    lr_schedule: str = "constant"  # constant | cosine (decays to 10% over ``epochs``)
    batch_size: int = 2048
    # > 0: each training event weighs 0.5 ** (age / half-life), age in days before the newest
    # training event (weights rescaled to mean 1), so a drifting log's recent tastes and
    # popularity dominate; 0 weighs every event alike.
    recency_half_life_days: float = 0.0
    epochs: int = 20  # the most epochs; early stopping on validation usually ends far sooner
    # Early stopping on the validation split's ``early_stopping_metric`` (a per-user metric such as
    # recall@100, seen items excluded), best epoch's weights restored; 0 turns it off. Off by
    # itself when there is no validation split.
    early_stopping_patience: int = 2
    early_stopping_metric: str = "recall@100"
    # After early stopping, refit fresh towers on train + validation for the best epoch count;
    # that model is tested and exported (the baselines refit likewise). See retrieval/train.py.
    refit_on_validation: bool = True
    # Negatives beyond the batch (mixed negative sampling, Yang et al. 2020): every step also
    # scores ``num_sampled_negatives`` catalog items drawn by ``negative_sampling`` (uniform, or
    # popularity ** negative_alpha); logQ then uses each candidate's probability under the mixture.
    num_sampled_negatives: int = 0
    negative_sampling: str = "uniform"  # uniform | popularity
    negative_alpha: float = 0.75
    # logQ of the sampled setup: "mixture" (above), or "batch_frequency" (p alone for every column,
    # what one gets by passing training frequencies to tfrs.tasks.Retrieval; kept as the ablation)
    sampled_logq: str = "mixture"
    # Hard negatives: of the sampled rows, the ``num_hard_negatives`` highest-scoring per query are
    # kept as extra negatives for that query only (needs num_sampled_negatives >= it).
    num_hard_negatives: int = 0
    eval_ks: tuple[int, ...] = (10, 100)
    exclude_seen: bool = True  # user-level metrics skip items the user met in training
    # Evaluated beside the towers on the same splits, tuned on validation (retrieval/compare.py):
    # popularity | recent_popularity | item_knn | ease
    baselines: tuple[str, ...] = ("popularity", "item_knn", "ease")

    def validate(self, where: str) -> None:
        if not self.eval_ks or any(k <= 0 for k in self.eval_ks):
            raise ConfigError(f"{where}.eval_ks: must be positive integers, got {list(self.eval_ks)}")
        for name in ("embedding_dim", "output_dim", "time_buckets", "batch_size", "epochs"):
            _positive(where, name, getattr(self, name))
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"{where}.lr_schedule: must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.early_stopping_patience < 0:
            raise ConfigError(f"{where}.early_stopping_patience: must be >= 0, got {self.early_stopping_patience}")
        metric, _, k = self.early_stopping_metric.partition("@")
        if metric not in ("recall", "ndcg", "mrr", "hit_rate") or not k.isdigit() or int(k) not in self.eval_ks:
            raise ConfigError(f"{where}.early_stopping_metric: must be recall|ndcg|mrr|hit_rate@k with k in eval_ks "
                              f"{list(self.eval_ks)}, got {self.early_stopping_metric!r}")
        for name in ("num_sampled_negatives", "num_hard_negatives", "recency_half_life_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: must be >= 0, got {getattr(self, name)}")
        if self.num_hard_negatives > self.num_sampled_negatives:
            raise ConfigError(f"{where}.num_hard_negatives: must be <= num_sampled_negatives "
                              f"({self.num_sampled_negatives}), got {self.num_hard_negatives}")
        if self.negative_sampling not in ("uniform", "popularity"):
            raise ConfigError(f"{where}.negative_sampling: must be 'uniform' or 'popularity', "
                              f"got {self.negative_sampling!r}")
        from tfrs_app.retrieval.baselines import BASELINES

        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ConfigError(f"{where}.baselines: unknown {unknown}; choose from {list(BASELINES)}")
        if self.sampled_logq not in ("mixture", "batch_frequency"):
            raise ConfigError(f"{where}.sampled_logq: must be 'mixture' or 'batch_frequency', got {self.sampled_logq!r}")
        if self.negative_alpha < 0:
            raise ConfigError(f"{where}.negative_alpha: must be >= 0, got {self.negative_alpha}")
        for size in self.hidden_layers:
            if size <= 0:
                raise ConfigError(f"{where}.hidden_layers: sizes must be > 0, got {list(self.hidden_layers)}")
        for name in ("id_dropout", "history_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{where}.{name}: must be in [0, 1), got {getattr(self, name)}")
        _positive(where, "temperature", self.temperature)
        _positive(where, "learning_rate", self.learning_rate)
        if self.optimizer not in ("adam", "adagrad"):
            raise ConfigError(f"{where}.optimizer: must be 'adam' or 'adagrad', got {self.optimizer!r}")
        if self.history_encoder not in HISTORY_ENCODERS:
            raise ConfigError(f"{where}.history_encoder: must be one of {list(HISTORY_ENCODERS)}, "
                              f"got {self.history_encoder!r}")


HISTORY_ENCODERS = ("mean", "gru", "transformer")


@dataclass(frozen=True)
class IndexConfig:
    """ScaNN index. ``None`` parameters are derived from the catalog size (see ``index.py``)."""

    k: int = 100
    num_leaves: Optional[int] = None
    num_leaves_to_search: Optional[int] = None
    num_reordering_candidates: Optional[int] = None
    dimensions_per_block: int = 2
    recall_k: int = 10
    target_recall: float = 0.95  # derived num_leaves_to_search doubles until recall@recall_k reaches it
    max_eval_queries: int = 2000

    def validate(self, where: str) -> None:
        for name in ("k", "dimensions_per_block", "recall_k", "max_eval_queries"):
            _positive(where, name, getattr(self, name))
        if not 0.0 < self.target_recall <= 1.0:
            raise ConfigError(f"{where}.target_recall: must be in (0, 1], got {self.target_recall}")
        for name in ("num_leaves", "num_leaves_to_search", "num_reordering_candidates"):
            value = getattr(self, name)
            if value is not None:
                _positive(where, name, value)


@dataclass(frozen=True)
class ExportConfig:
    """TF-Serving exports: ``<base_dir>/retrieval/<version>/`` and ``retrieval_scann``."""

    base_dir: str = "saved_models"
    k: int = 10

    def validate(self, where: str) -> None:
        _positive(where, "k", self.k)


HEADS = ("engagement", "satisfaction", "responsibility")
DEFAULT_TARGETS = {"engagement": 0.8, "satisfaction": 0.9, "responsibility": 0.96}


@dataclass(frozen=True)
class RankerConfig:
    """Multi-head ranker, its MC-dropout uncertainty and its decision thresholds.

    Features are encoded by the retrieval towers' layers (no L2 norm, one linear projection to
    ``feature_dim``); the trunk sees [query, candidate, query * candidate]. ``trunk`` is
    ``shared`` (one MLP for all heads) or ``mmoe`` (``num_experts`` MLPs, one softmax gate per
    head). Each head is Dense(head_layers) with MC dropout after every hidden layer, then one
    logit; only the part after the first dropout is sampled, so T samples cost far less than T
    passes.
    """

    embedding_dim: int = 32
    feature_dim: int = 64
    trunk: str = "shared"  # shared | mmoe
    trunk_layers: tuple[int, ...] = (256, 128)
    num_experts: int = 4
    head_layers: tuple[int, ...] = (64,)
    dropout: float = 0.2  # MC dropout rate inside the heads
    id_dropout: float = 0.1
    use_user_features: bool = True
    use_history: bool = True
    use_time: bool = True
    use_text: bool = True
    use_genres: bool = True
    use_position: bool = True  # shallow position-bias tower (training only) when the log has a position column
    negatives_per_positive: int = 4  # sampled unengaged impressions per logged event
    negative_sampling_power: float = 1.0  # p(item) ~ train_count ** power
    loss_weights: Mapping[str, float] = field(default_factory=lambda: {h: 1.0 for h in HEADS})
    learning_rate: float = 0.002
    batch_size: int = 1024
    epochs: int = 3
    mc_samples: int = 30  # T, fixed in the exported predict_with_uncertainty signature
    num_buckets: int = 5  # uncertainty buckets: quantiles of the validation std
    min_positives: int = 20  # a bucket with fewer validation positives falls back to the global threshold
    threshold_policy: str = "dp"  # exported per-bucket thresholds: dp | mist | global | isotonic
    # precision target of each head's exported decision; a head left out keeps DEFAULT_TARGETS
    decision_targets: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    report_targets: tuple[float, ...] = (0.8, 0.9)
    num_bootstrap: int = 1000

    def validate(self, where: str) -> None:
        for name in ("embedding_dim", "feature_dim", "num_experts", "batch_size", "epochs", "num_buckets",
                     "num_bootstrap"):
            _positive(where, name, getattr(self, name))
        for name in ("trunk_layers", "head_layers"):
            sizes = getattr(self, name)
            if not sizes or any(s <= 0 for s in sizes):
                raise ConfigError(f"{where}.{name}: must be a non-empty list of sizes > 0, got {list(sizes)}")
        if self.trunk not in ("shared", "mmoe"):
            raise ConfigError(f"{where}.trunk: must be 'shared' or 'mmoe', got {self.trunk!r}")
        for name in ("dropout", "id_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{where}.{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.dropout <= 0.0:
            raise ConfigError(f"{where}.dropout: MC dropout needs a rate > 0, got {self.dropout}")
        if self.negatives_per_positive < 0:
            raise ConfigError(f"{where}.negatives_per_positive: must be >= 0, got {self.negatives_per_positive}")
        _positive(where, "learning_rate", self.learning_rate)
        if self.mc_samples < 2:
            raise ConfigError(f"{where}.mc_samples: a standard deviation needs T >= 2 samples, got {self.mc_samples}")
        if self.min_positives < 1:
            raise ConfigError(f"{where}.min_positives: must be >= 1, got {self.min_positives}")
        if self.threshold_policy not in ("dp", "mist", "global", "isotonic"):
            raise ConfigError(f"{where}.threshold_policy: must be dp, mist, global or isotonic, "
                              f"got {self.threshold_policy!r}")
        for name in ("loss_weights", "decision_targets"):
            mapping = getattr(self, name)
            unknown = sorted(set(mapping) - set(HEADS))
            if unknown:
                raise ConfigError(f"{where}.{name}.{unknown[0]}: unknown head (heads: {list(HEADS)})")
        for head, weight in self.loss_weights.items():
            if weight < 0:
                raise ConfigError(f"{where}.loss_weights.{head}: must be >= 0, got {weight}")
        targets = [(f"decision_targets.{h}", t) for h, t in self.decision_targets.items()]
        targets += [(f"report_targets[{i}]", t) for i, t in enumerate(self.report_targets)]
        for name, target in targets:
            if not 0.0 < target < 1.0:
                raise ConfigError(f"{where}.{name}: a precision target must be in (0, 1), got {target}")

    def decision_target(self, head: str) -> float:
        return float(self.decision_targets.get(head, DEFAULT_TARGETS[head]))


FEEDBACK_METHODS = ("naive", "waiting_window", "fsiw", "es_dfm", "es_dfm_stream", "pre_conversion", "oracle")


@dataclass(frozen=True)
class FeedbackConfig:
    """Delayed feedback: how the ranker's engagement labels of the training split are weighted
    when the log has a ``conversion_timestamp`` column (``tfrs_app/feedback/``).

    The observed label of a training impression is "converted by ``cutoff``"; its elapsed time
    is ``cutoff`` minus its timestamp. ``method`` turns these into labels and ``weight_engagement``:
    ``naive`` (observed labels, weight 1), ``waiting_window`` (impressions younger than
    ``window_days`` get weight 0), ``fsiw`` (Yasui et al. 2020), ``es_dfm`` (Yang et al. 2021,
    elapsed-time window ``window_days``, weights at the cut-off; ``es_dfm_stream``: the paper's
    stream weights), ``pre_conversion`` (flip probability from the ``pre_*``
    signals), ``oracle`` (the eventual labels: uses conversions after the cut-off, so it is a
    benchmark bound, never a deployable choice).
    """

    method: str = "naive"
    # When the labels are read: Unix seconds or an ISO date/time; None = the last training event.
    cutoff: Optional[Any] = None
    window_days: float = 1.0
    max_weight: float = 10.0  # importance weights are clipped to [0, max_weight]
    # After training, shift the engagement logit so the mean prediction on the training rows is the
    # (weighted) positive rate the method trained toward (ranking/train.py recalibrate_intercept).
    recalibrate: bool = True

    def validate(self, where: str) -> None:
        if self.method not in FEEDBACK_METHODS:
            raise ConfigError(f"{where}.method: must be one of {list(FEEDBACK_METHODS)}, got {self.method!r}")
        _positive(where, "window_days", self.window_days)
        if self.max_weight < 1:
            raise ConfigError(f"{where}.max_weight: must be >= 1, got {self.max_weight}")
        self.cutoff_seconds()

    def cutoff_seconds(self) -> Optional[int]:
        """``cutoff`` as Unix seconds (None when unset); ConfigError naming the field if unparsable."""
        if self.cutoff is None:
            return None
        import datetime

        import pandas as pd

        value = self.cutoff
        if isinstance(value, bool):
            raise ConfigError(f"feedback.cutoff: expected Unix seconds or a date, got {value!r}")
        if isinstance(value, (int, float)):
            return int(value)
        if isinstance(value, (str, datetime.date)):
            try:
                stamp = pd.Timestamp(value)
            except (ValueError, TypeError):
                raise ConfigError(f"feedback.cutoff: expected Unix seconds or a date, got {value!r}") from None
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            return int(stamp.value // 10**9)
        raise ConfigError(f"feedback.cutoff: expected Unix seconds or a date, got {value!r}")


@dataclass(frozen=True)
class RecommenderConfig:
    """The end-to-end recommender: retrieve K unseen, rank, gate, blend, MMR, top-N."""

    num_candidates: int = 100  # K, ranked per request
    exclude_budget: int = 100  # extra items retrieved so that K remain after removing seen ones
    top_n: int = 10
    engagement_weight: float = 0.5
    satisfaction_weight: float = 0.5
    std_penalty: float = 0.0  # subtracted per unit of (engagement_std + satisfaction_std)
    mmr_lambda: float = 0.7  # 1 = rank by the blended score only; lower = more diverse
    cold_popularity_weight: float = 0.1  # popularity prior added off the personalized path
    # Adds watchnext_weight * P(engage) * normalised WatchNext value (graph/watchnext.py: expected
    # follow-on consumption after the item, in [0, 1]) to the blended score; needs a trained graph
    # in the run. Off by default: see README "Related items" for what the benchmark measured.
    watchnext_weight: float = 0.0

    def validate(self, where: str) -> None:
        for name in ("num_candidates", "top_n"):
            _positive(where, name, getattr(self, name))
        if self.top_n > self.num_candidates:
            raise ConfigError(f"{where}.top_n: must be <= num_candidates ({self.num_candidates}), got {self.top_n}")
        for name in ("exclude_budget", "std_penalty", "cold_popularity_weight", "engagement_weight",
                     "satisfaction_weight", "watchnext_weight"):
            _non_negative(where, name, getattr(self, name))
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ConfigError(f"{where}.mmr_lambda: must be in [0, 1], got {self.mmr_lambda}")


@dataclass(frozen=True)
class GraphConfig:
    """The directed item graph and its dual-embedding GNN (``tfrs_app/graph/``).

    Edges, from the training events of each user in time order (``graph/edges.py``):
    A -> B when B follows A strictly later within ``window_days`` (each event pairs with at most
    its next ``max_next`` events), kept when seen ``min_count`` times; similarity edges A - B
    when two items are consumed within ``coview_minutes`` of each other in either order (same
    threshold), plus, with ``content_top_k`` > 0, each item's top-k catalog neighbours by
    title/genre cosine. The model (``graph/model.py``): ``hops`` rounds of neighbour
    aggregation over degree-adaptive samples (``max_neighbours`` for the lowest-degree items
    down to ``min_neighbours`` for hubs), dual source/target embeddings (``dual``; false = the
    symmetric single-embedding baseline), in-batch softmax over edges at ``temperature`` plus
    ``num_negatives`` uniform catalog negatives (logQ-corrected with ``use_logq``), and
    ``asymmetry_weight`` times the penalty on scoring a one-way edge backwards. Early stopping
    on validation HitRate@``k``.
    """

    window_days: float = 7.0
    min_count: int = 2
    max_next: int = 20
    coview_minutes: float = 30.0
    content_top_k: int = 0
    embedding_dim: int = 64
    hidden_layers: tuple[int, ...] = (128,)
    hops: int = 2
    max_neighbours: int = 20
    min_neighbours: int = 5
    dual: bool = True
    asymmetry_weight: float = 1.0
    temperature: float = 0.1
    num_negatives: int = 256
    use_logq: bool = True
    id_dropout: float = 0.2
    # In training, this share of items lose id and neighbours together (the cold-start path; model.py)
    cold_dropout: float = 0.2
    learning_rate: float = 0.003
    batch_size: int = 1024
    epochs: int = 30
    early_stopping_patience: int = 3
    k: int = 10  # HitRate@k / MRR@k, and the related-items export's top-k

    def validate(self, where: str) -> None:
        for name in ("window_days", "min_count", "max_next", "embedding_dim", "hops", "max_neighbours",
                     "min_neighbours", "temperature", "learning_rate", "batch_size", "epochs", "k"):
            _positive(where, name, getattr(self, name))
        for name in ("coview_minutes", "content_top_k", "asymmetry_weight", "num_negatives", "early_stopping_patience"):
            _non_negative(where, name, getattr(self, name))
        if self.min_neighbours > self.max_neighbours:
            raise ConfigError(f"{where}.min_neighbours: must be <= max_neighbours ({self.max_neighbours}), "
                              f"got {self.min_neighbours}")
        if any(size <= 0 for size in self.hidden_layers):
            raise ConfigError(f"{where}.hidden_layers: sizes must be > 0, got {list(self.hidden_layers)}")
        for name in ("id_dropout", "cold_dropout"):
            _share(where, name, getattr(self, name))


SESSION_LOSSES = ("cross-entropy", "bpr", "top1", "bpr-max", "top1-max")


@dataclass(frozen=True)
class SessionsConfig:
    """GRU4Rec session recommendations (``tfrs_app/sequences/``; Hidasi et al. 2016, Hidasi and
    Karatzoglou 2018, and the details of the authors' own implementation).

    Trained with session-parallel mini-batches of ``batch_size`` sessions; the scores of each
    step are against the mini-batch's targets plus ``num_sampled_negatives`` items drawn from
    popularity ** ``negative_alpha`` (shared by the mini-batch), under ``loss``. ``embedding_dim``
    0 is the one-hot input (the input weights are an item table); with ``constrained_embedding``
    the input and output item tables are one (then the input width is the last hidden size).
    ``final_activation``: auto | linear | tanh | relu | elu-<alpha>; auto is elu-1 for BPR-max (the
    original applies ELU before BPR-max only) and linear for the other losses.
    ``bpreg``: BPR-max's score regularisation; ``logq``: the weight of the logQ correction of
    cross-entropy's sampled scores. Early stopping on validation Recall@``k``; ``k`` is also the
    exported list length. ``sequence``: ``session`` trains on the data's sessions, ``user`` on each
    user's whole history as one sequence (the leave-last-out protocol's unit).
    """

    sequence: str = "session"
    # Chosen on validation: cross-entropy (logQ 1) had the best validation metric of the five
    # losses on the synthetic session log and on ml-latest-small leave-last-out (README, bench/sessions.py)
    loss: str = "cross-entropy"
    hidden_sizes: tuple[int, ...] = (100,)
    embedding_dim: int = 0
    constrained_embedding: bool = True
    dropout_embedding: float = 0.0
    dropout_hidden: float = 0.0
    final_activation: str = "auto"
    num_sampled_negatives: int = 2048
    negative_alpha: float = 0.5
    bpreg: float = 1.0
    logq: float = 1.0
    optimizer: str = "adagrad"  # adagrad | adam
    learning_rate: float = 0.05
    momentum: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    early_stopping_patience: int = 2
    k: int = 20

    @property
    def activation(self) -> str:
        """The final activation ``auto`` stands for under this loss."""
        if self.final_activation != "auto":
            return self.final_activation
        return "elu-1" if self.loss == "bpr-max" else "linear"

    def validate(self, where: str) -> None:
        if self.sequence not in ("session", "user"):
            raise ConfigError(f"{where}.sequence: must be 'session' or 'user', got {self.sequence!r}")
        if self.loss not in SESSION_LOSSES:
            raise ConfigError(f"{where}.loss: must be one of {list(SESSION_LOSSES)}, got {self.loss!r}")
        if not self.hidden_sizes or any(size <= 0 for size in self.hidden_sizes):
            raise ConfigError(f"{where}.hidden_sizes: one or more sizes > 0, got {list(self.hidden_sizes)}")
        for name in ("learning_rate", "batch_size", "epochs", "k"):
            _positive(where, name, getattr(self, name))
        for name in ("embedding_dim", "num_sampled_negatives", "negative_alpha", "bpreg", "logq",
                     "early_stopping_patience"):
            _non_negative(where, name, getattr(self, name))
        if self.constrained_embedding and self.embedding_dim:
            raise ConfigError(f"{where}.embedding_dim: must be 0 with constrained_embedding (the tied table's width is "
                              f"the last hidden size), got {self.embedding_dim}")
        for name in ("dropout_embedding", "dropout_hidden", "momentum"):
            _share(where, name, getattr(self, name))
        if self.optimizer not in ("adagrad", "adam"):
            raise ConfigError(f"{where}.optimizer: must be 'adagrad' or 'adam', got {self.optimizer!r}")
        activation, _, alpha = self.final_activation.partition("-")
        valid = activation in ("auto", "linear", "tanh", "relu") and not alpha
        if activation == "elu":
            try:
                valid = float(alpha) > 0
            except ValueError:
                valid = False
        if not valid:
            raise ConfigError(f"{where}.final_activation: must be auto, linear, tanh, relu or elu-<alpha > 0>, "
                              f"got {self.final_activation!r}")


@dataclass(frozen=True)
class Config:
    run_dir: str = "runs/demo"
    seed: int = 0
    strategy: str = "default"  # default | mirrored | multi_worker (TF_CONFIG); see tfrs_app/distribute.py
    data: DataConfig = field(default_factory=DataConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    recommender: RecommenderConfig = field(default_factory=RecommenderConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)

    def validate(self) -> None:
        from tfrs_app.distribute import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: must be one of {list(STRATEGIES)}, got {self.strategy!r}")
        for name, seed in (("seed", self.seed), ("data.seed", self.data.seed), ("data.synthetic.seed", self.data.synthetic.seed),
                           ("data.delayed.seed", self.data.delayed.seed),
                           ("data.directed.seed", self.data.directed.seed),
                           ("data.sequential.seed", self.data.sequential.seed)):
            if seed < 0:
                raise ConfigError(f"{name}: must be >= 0 (a NumPy / TensorFlow seed), got {seed}")
        if not self.run_dir.strip():
            raise ConfigError("run_dir: must not be empty")
        self.data.validate("data")
        self.retrieval.validate("retrieval")
        self.ranker.validate("ranker")
        self.feedback.validate("feedback")
        self.recommender.validate("recommender")
        self.graph.validate("graph")
        self.sessions.validate("sessions")
        self.index.validate("index")
        self.export.validate("export")

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved config as YAML (atomically), so a run can be reproduced."""
        from tfrs_app.io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_config(path: Optional[str | os.PathLike] = None, overrides: Optional[list[str]] = None) -> Config:
    """Reads a YAML config (or the defaults), applies ``key.sub=value`` overrides, validates.

    Raises ConfigError naming the field for unknown keys, wrong types and bad values.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        raw = yaml.safe_load(text) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    for item in overrides or []:
        _apply_override(raw, item)
    config = _build(Config, raw, "")
    config.validate()
    return config


def replace(config: Config, **changes: Any) -> Config:
    """``dataclasses.replace`` for nested fields: ``replace(cfg, **{"retrieval.epochs": 1})``."""
    raw = config.to_dict()
    for dotted, value in changes.items():
        _set_dotted(raw, dotted, value)
    new = _build(Config, raw, "")
    new.validate()
    return new


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.sub=value")
    key, value = item.split("=", 1)
    _set_dotted(raw, key.strip(), yaml.safe_load(value))


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
    node[parts[-1]] = value


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key (known: {sorted(names)})")
    kwargs = {name: _coerce(hints[name], value, _join(where, name)) for name, value in raw.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict, collections.abc.Mapping) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        value_hint = args[1] if len(args) == 2 else str
        return {str(k): _coerce(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _positive(where: str, name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{where}.{name}: must be > 0, got {value}")


def _non_negative(where: str, name: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{where}.{name}: must be >= 0, got {value}")


def _share(where: str, name: str, value: float) -> None:
    """A dropout-like rate: in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{where}.{name}: must be in [0, 1), got {value}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
