"""The two-tower retrieval model on the session cases, so GRU4Rec and the query towers (history
``mean``, ``gru`` or ``transformer``, ``retrieval.history_encoder``) are measured by one evaluator.

A case's query is what the tower sees in production for that event: the user id and features,
the event's timestamp, and as history the session so far (newest first) followed by the user's
events known before the held-out part, the ``data.history_length`` most recent in all.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.features.examples import candidate_features, query_features, user_histories
from tfrs_app.retrieval.model import embed
from tfrs_app.sequences.train import Cases, evaluate_cases


def case_histories(cases: Cases, catalog_ids: np.ndarray, history_length: int) -> np.ndarray:
    """[C, H] object: each case's history for the query tower, most recent first, "" padded."""
    earlier = user_histories(cases.before, cases.events["user_id"].to_numpy(dtype=object), history_length)
    history = np.full((len(cases.targets), history_length), "", dtype=object)
    for c, prefix in enumerate(cases.prefixes):
        recent = catalog_ids[np.asarray(prefix, np.int64)[::-1][:history_length]]
        if cases.leave_last_out:  # the prefix is the user's whole earlier sequence
            history[c, :len(recent)] = recent
        else:
            tail = [i for i in earlier[c] if i][: history_length - len(recent)]
            history[c, :len(recent) + len(tail)] = np.r_[recent, np.asarray(tail, dtype=object)]
    return history


def tower_scorer(query_tower, candidate_tower, catalog: pd.DataFrame, history_length: int,
                 cases: Cases) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """score_fn over ``cases.prefixes`` for a two-tower model: every case's query vector is
    computed once; the function looks each prefix up by identity, so it must be called with
    (slices of) ``cases.prefixes`` themselves, as ``sequences/evaluate.py`` does."""
    catalog_ids = catalog["item_id"].astype(str).to_numpy(dtype=object)
    queries = query_features(cases.events, case_histories(cases, catalog_ids, history_length))
    features = {name: queries[name] for name in ("user_id", "timestamp", "history", *query_tower.user_feature_names)}
    vectors = embed(query_tower, features)
    items = embed(candidate_tower, candidate_features(catalog))
    position = {id(p): c for c, p in enumerate(cases.prefixes)}
    if len(position) != len(cases.prefixes):
        raise ValueError("tower_scorer: cases.prefixes must be distinct arrays")

    def score(prefixes: Sequence[np.ndarray]) -> np.ndarray:
        return vectors[[position[id(p)] for p in prefixes]] @ items.T

    return score


def trained_tower_scorer(trained, cases: Cases) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """``tower_scorer`` of a ``retrieval.train.TrainedRetrieval``."""
    return tower_scorer(trained.model.query_tower, trained.model.candidate_tower, trained.catalog,
                        trained.cfg.data.history_length, cases)


class NextItemEarlyStopping(tf.keras.callbacks.Callback):
    """Early stopping of a two-tower fit on the session protocol's own validation metric (the
    one GRU4Rec stops on), best epoch's weights restored at the end: the retrieval stage's
    user-level Recall@100 rewards a different thing (all of a user's later items, from the
    history before them) and stops an order-aware tower after its first epoch.
    ``history`` holds the metric per epoch."""

    def __init__(self, cases: Cases, catalog: pd.DataFrame, history_length: int, k: int, patience: int = 2):
        super().__init__()
        self.cases, self.catalog, self.history_length, self.k, self.patience = cases, catalog, history_length, k, patience
        self.history: list[float] = []
        self.best_weights = None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        score_fn = tower_scorer(self.model.query_tower, self.model.candidate_tower, self.catalog, self.history_length,
                                self.cases)
        metrics = evaluate_cases(score_fn, self.cases, self.k)
        value = next(v for key, v in metrics.items() if key.startswith(("recall@", "hit_rate@")))
        self.history.append(float(value))
        if value > max(self.history[:-1], default=-np.inf):  # ties keep the earlier epoch, as sequences.train.fit
            self.best_weights = self.model.get_weights()
        elif len(self.history) - 1 - int(np.argmax(self.history)) >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    @property
    def best_epoch(self) -> int:
        return int(np.argmax(self.history)) + 1 if self.history else 0
