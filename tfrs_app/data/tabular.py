"""CSV and Parquet interaction logs, through a column mapping.

``columns`` maps our schema's names to the file's, e.g. for MovieLens' own ratings.csv::

    columns: {user_id: userId, item_id: movieId, timestamp: timestamp, rating: rating}

Columns not mentioned keep their names, so a file already in our schema needs no mapping.
An optional items file (``items_path``, same mapping) supplies the catalog.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import pandas as pd

from tfrs_app.data.schema import Interactions, SchemaError, validate_interactions


def load_tabular(path: str, columns: Optional[Mapping[str, str]] = None, items_path: Optional[str] = None,
                 fmt: Optional[str] = None) -> Interactions:
    """Reads ``path`` (csv or parquet, by ``fmt`` or suffix), renames columns, validates."""
    columns = dict(columns or {})
    events = _read(path, fmt)
    missing = [f for f, v in columns.items() if v not in events.columns and f not in ("item_title", "item_genres")]
    if missing:
        field = missing[0]
        raise SchemaError(f"{path}: column mapping {field} -> {columns[field]!r}, but the file has no column "
                          f"{columns[field]!r} (columns: {list(events.columns)})")
    events = events.rename(columns={v: k for k, v in columns.items()})
    items = None
    if items_path:
        items = _read(items_path, fmt).rename(columns={v: k for k, v in columns.items()})
    return validate_interactions(events, items, source=str(path))


def _read(path: str, fmt: Optional[str]) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data.path: no such file {path!r}")
    kind = fmt or ("parquet" if p.suffix in (".parquet", ".pq") else "csv")
    if kind == "parquet":
        return pd.read_parquet(p)
    try:
        return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{path}: the file is empty") from None
