"""WatchNext values: how much further consumption an item tends to lead to.

value(i) = the expected number of items a user consumes within ``graph.window_days`` after
consuming i, estimated from the directed "consumed after" pairs of the known events
(``ItemGraph.follow_ons / occurrences``, before the edge threshold) and shrunk toward the
catalog mean with ``prior_events`` pseudo-events, so an item seen twice does not get an
extreme value. User-agnostic and computed offline, as the WatchNext design note suggests.

``normalised`` = value / its 99th percentile over the catalog, clipped to [0, 1]: the term the
recommender's blend adds is ``watchnext_weight * P(engage) * normalised`` (the total value of
recommending an item = P(engage) x expected follow-on consumption).

Stored with the catalog at ``<run_dir>/graph/watchnext.parquet``: item_id, occurrences, value,
normalised, one row per catalog item.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_app.graph.edges import ItemGraph
from tfrs_app.io import atomic_write_parquet

FILE = "watchnext.parquet"


def watchnext_values(graph: ItemGraph, prior_events: float = 5.0) -> pd.DataFrame:
    """[N] rows in catalog order: item_id, occurrences, value, normalised."""
    occurrences = graph.occurrences.astype(np.float64)
    seen = occurrences > 0
    mean = graph.follow_ons[seen].sum() / occurrences[seen].sum() if seen.any() else 0.0
    value = (graph.follow_ons + prior_events * mean) / (occurrences + prior_events)
    top = np.quantile(value, 0.99) if len(value) else 0.0
    normalised = np.clip(value / top, 0.0, 1.0) if top > 0 else np.zeros_like(value)
    return pd.DataFrame({"item_id": graph.item_ids.astype(str), "occurrences": graph.occurrences.astype(np.int64),
                         "value": value.astype(np.float32), "normalised": normalised.astype(np.float32)})


def save_watchnext(values: pd.DataFrame, graph_dir: str | Path) -> Path:
    path = Path(graph_dir) / FILE
    atomic_write_parquet(path, values)
    return path


def load_watchnext(run_dir: str | Path, item_ids) -> np.ndarray:
    """[len(item_ids)] float32 normalised values aligned with ``item_ids``: a catalog item without
    events has the shrunk catalog mean, an id missing from the file 0; FileNotFoundError naming
    the stage to run when there is none."""
    path = Path(run_dir) / "graph" / FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no WatchNext values in this run: run `tfrs-app train-graph --run-dir "
                                f"{run_dir}` first, or set recommender.watchnext_weight=0")
    values = pd.read_parquet(path)
    table = dict(zip(values["item_id"].astype(str), values["normalised"].astype(np.float32)))
    return np.array([table.get(str(i), 0.0) for i in item_ids], dtype=np.float32)
