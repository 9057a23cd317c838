"""The feature space: vocabularies and statistics fitted on the training split only.

One ``FeatureSpace`` drives the towers' lookup layers, the training examples and the serving
signatures, and is saved as JSON in the run directory so any later stage (index, export)
rebuilds identical towers without touching the data again.

Unknown values are handled explicitly: ids outside the vocabulary map to a learned OOV row
(the towers train it by id dropout), so unknown users and new items still get embeddings.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_app.data.schema import GENRE_SEPARATOR, user_feature_columns
from tfrs_app.io import atomic_write_text, read_json


@dataclass(frozen=True)
class FeatureSpace:
    """Vocabularies (tuples of strings) and stats; every field is JSON-serialisable.

    item_counts[i] is the number of training events of item_ids[i]; it gives logQ's sampling
    probabilities and the popularity baseline.
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    item_counts: tuple[int, ...]
    user_features: dict[str, tuple[str, ...]] = field(default_factory=dict)
    genres: tuple[str, ...] = ()
    title_tokens: tuple[str, ...] = ()
    time_mean: float = 0.0
    time_std: float = 1.0
    time_boundaries: tuple[float, ...] = ()
    history_length: int = 10
    time_range: tuple[float, ...] = ()  # (first, last) training timestamp; requests are clipped to it

    @classmethod
    def fit(cls, train: pd.DataFrame, catalog: pd.DataFrame, history_length: int = 10,
            time_buckets: int = 20, max_title_tokens: int = 20000) -> "FeatureSpace":
        """Fits on the training events and the catalog's text (text carries no labels)."""
        if len(train) == 0:
            raise ValueError("FeatureSpace.fit: the training split is empty")
        counts = train["item_id"].value_counts()
        users = train["user_id"].value_counts()
        times = train["timestamp"].to_numpy(dtype=np.float64)
        quantiles = np.unique(np.quantile(times, np.linspace(0, 1, time_buckets + 1)[1:-1]))
        genres = sorted({g for text in catalog["item_genres"] for g in text.split(GENRE_SEPARATOR) if g})
        return cls(
            user_ids=tuple(users.index.astype(str)),
            item_ids=tuple(counts.index.astype(str)),
            item_counts=tuple(int(c) for c in counts.to_numpy()),
            user_features={c: tuple(sorted(set(train[c].astype(str)) - {""})) for c in user_feature_columns(train)},
            genres=tuple(genres),
            title_tokens=tuple(_title_vocabulary(catalog["item_title"], max_title_tokens)),
            time_mean=float(times.mean()),
            time_std=float(max(times.std(), 1.0)),
            time_boundaries=tuple(float(q) for q in quantiles),
            history_length=history_length,
            time_range=(float(times.min()), float(times.max())),
        )

    def item_probability(self, item_ids: np.ndarray) -> np.ndarray:
        """Empirical sampling probability of each id (train frequency); unseen ids get the minimum."""
        total = float(sum(self.item_counts))
        table = dict(zip(self.item_ids, self.item_counts))
        floor = min(self.item_counts)
        return np.array([table.get(i, floor) for i in item_ids], dtype=np.float32) / total

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureSpace":
        raw = read_json(path)
        if not isinstance(raw, dict) or not set(cls.__dataclass_fields__) >= set(raw) or "item_ids" not in raw:
            raise ValueError(f"{path}: not a feature space (keys {sorted(raw) if isinstance(raw, dict) else type(raw)})")
        raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        raw["user_features"] = {k: tuple(v) for k, v in raw["user_features"].items()}
        return cls(**raw)


def _title_vocabulary(titles: pd.Series, max_tokens: int) -> list[str]:
    """Title tokens by frequency, standardised exactly as the candidate tower's TextVectorization."""
    import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
    import tensorflow as tf

    layer = tf.keras.layers.TextVectorization(max_tokens=max_tokens)
    layer.adapt(tf.constant(titles.astype(str).to_numpy()))
    return [t for t in layer.get_vocabulary() if t not in ("", "[UNK]")]
