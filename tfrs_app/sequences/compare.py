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

from tfrs_app.features.examples import candidate_features, query_features, user_histories
from tfrs_app.retrieval.model import embed
from tfrs_app.sequences.train import Cases


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


def tower_scorer(trained, cases: Cases) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """score_fn over ``cases.prefixes`` for a ``retrieval.train.TrainedRetrieval``: every case's
    query vector is computed once; the function looks each prefix up by identity, so it must be
    called with (slices of) ``cases.prefixes`` themselves, as ``sequences/evaluate.py`` does."""
    catalog_ids = trained.catalog["item_id"].astype(str).to_numpy(dtype=object)
    history = case_histories(cases, catalog_ids, trained.cfg.data.history_length)
    queries = query_features(cases.events, history)
    features = {name: queries[name] for name in ("user_id", "timestamp", "history", *trained.model.query_tower.user_feature_names)}
    vectors = embed(trained.model.query_tower, features)
    items = embed(trained.model.candidate_tower, candidate_features(trained.catalog))
    position = {id(p): c for c, p in enumerate(cases.prefixes)}
    if len(position) != len(cases.prefixes):
        raise ValueError("tower_scorer: cases.prefixes must be distinct arrays")

    def score(prefixes: Sequence[np.ndarray]) -> np.ndarray:
        rows = [position[id(p)] for p in prefixes]
        return vectors[rows] @ items.T

    return score
