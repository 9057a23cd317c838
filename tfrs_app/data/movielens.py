"""MovieLens through the real tensorflow-datasets builders, online or offline.

``load_movielens("latest-small", manual_dir=...)`` reads ``movielens/<variant>-ratings`` and
``movielens/<variant>-movies``, joins them into our schema, and maps labels as documented in
ARCHITECTURE.md section 2 (a proxy, since MovieLens logs ratings, not impressions):

- engagement = 1 for every rating (the user watched and rated);
- satisfaction = rating >= 4;
- responsibility = rating > 1 (a 0.5-1 star rating stands for "cross it out").

The movies table is the catalog, so movies nobody rated are candidates too. ``manual_dir``
is a folder holding the GroupLens zip (e.g. ``../shared/data/ml-latest-small``): tfds
then prepares the dataset without any network access.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from tfrs_app.data.schema import Interactions, validate_interactions

VARIANTS = ("100k", "1m", "latest-small", "20m", "25m")
# Demographic user features the 100k and 1m variants carry, renamed into the user_ namespace.
_USER_FEATURES = {
    "user_gender": "user_gender",
    "bucketized_user_age": "user_age",
    "user_occupation_text": "user_occupation",
}


def load_movielens(variant: str, data_dir: Optional[str] = None, manual_dir: Optional[str] = None) -> Interactions:
    """Loads MovieLens ``variant`` into the interaction schema (ratings joined with movies)."""
    if variant not in VARIANTS:
        raise ValueError(f"data.source: unknown MovieLens variant {variant!r}; choose one of {VARIANTS}")
    import tensorflow_datasets as tfds

    kwargs = {}
    if manual_dir:
        kwargs["download_and_prepare_kwargs"] = {"download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)}
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    try:
        ratings, info = tfds.load(f"movielens/{variant}-ratings", split="train", data_dir=data_dir, with_info=True, **kwargs)
        movies, _ = tfds.load(f"movielens/{variant}-movies", split="train", data_dir=data_dir, with_info=True, **kwargs)
    except NonMatchingChecksumError as error:
        where = f"the zip in data.manual_dir {manual_dir!r}" if manual_dir else "the downloaded archive"
        raise ValueError(f"movielens/{variant}: {where} is not the file tfds expects (wrong checksum: re-zipped, "
                         f"truncated or another release). Put the original GroupLens ml-{variant}.zip there, "
                         f"unchanged ({str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error})"
                         ) from None

    genre_names = np.array(info.features["movie_genres"].feature.names, dtype=object)
    keep = ["user_id", "movie_id", "timestamp", "user_rating"] + [k for k in _USER_FEATURES if k in info.features]
    r = _to_numpy(ratings.map(lambda x: {k: x[k] for k in keep}))
    rating = r["user_rating"].astype(np.float32)
    events = pd.DataFrame({
        "user_id": _decode(r["user_id"]),
        "item_id": _decode(r["movie_id"]),
        "timestamp": r["timestamp"].astype(np.int64),
        "rating": rating,
        "engagement": np.ones_like(rating),
        "satisfaction": (rating >= 4).astype(np.float32),
        "responsibility": (rating > 1).astype(np.float32),
    })
    for source, target in _USER_FEATURES.items():
        if source in r:
            values = r[source]
            events[target] = _decode(values) if values.dtype == object else values.astype(str)

    m = _to_numpy(movies.map(lambda x: {"movie_id": x["movie_id"], "movie_title": x["movie_title"],
                                        "movie_genres": x["movie_genres"]}), ragged=("movie_genres",))
    catalog = pd.DataFrame({
        "item_id": _decode(m["movie_id"]),
        "item_title": _decode(m["movie_title"]),
        "item_genres": ["|".join(genre_names[g]) for g in m["movie_genres"]],
    })
    titles = catalog.set_index("item_id")
    events["item_title"] = titles["item_title"].reindex(events["item_id"]).fillna("").to_numpy()
    events["item_genres"] = titles["item_genres"].reindex(events["item_id"]).fillna("").to_numpy()
    return validate_interactions(events, catalog, source=f"movielens/{variant}")


def _to_numpy(dataset, ragged: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Whole dataset as numpy columns, in large batches (ragged columns become lists)."""
    import tensorflow as tf

    columns: dict[str, list] = {}
    batched = dataset.ragged_batch(65536) if ragged else dataset.batch(65536)
    for batch in batched:
        for key, value in batch.items():
            if isinstance(value, tf.RaggedTensor):
                columns.setdefault(key, []).extend(value.to_list())
            else:
                columns.setdefault(key, []).append(value.numpy())
    return {k: (np.array(v, dtype=object) if k in ragged else np.concatenate(v)) for k, v in columns.items()}


def _decode(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=object)
