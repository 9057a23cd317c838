"""The one interaction schema every source is turned into, and its validation at the edge.

Interactions (one row per logged event, a pandas DataFrame):

| column                 | dtype   | required | meaning                                               |
| ---------------------- | ------- | -------- | ----------------------------------------------------- |
| user_id                | str     | yes      | who                                                   |
| item_id                | str     | yes      | what                                                  |
| timestamp              | int64   | yes      | when, Unix seconds (ints, or strings/datetimes parsed) |
| rating                 | float   | no       | explicit rating if the source has one                 |
| engagement             | float   | no       | 1 acted on / 0 impression only / NaN unknown          |
| satisfaction           | float   | no       | 1 glad / 0 not, given engagement; NaN where unknown   |
| responsibility         | float   | no       | 1 appropriate / 0 not; NaN where unknown              |
| weight_<head>          | float   | no       | per-head sample weight (>= 0), e.g. delayed feedback  |
| position               | int64   | no       | slot the item was shown in (0 = top); -1 or NaN unknown |
| conversion_timestamp   | float   | no       | when the engagement label became 1 (Unix seconds, NaN  |
|                        |         |          | if not yet); engagement is then 1 exactly where set    |
| pre_<name>             | float   | no       | pre-conversion signal (0/1 or a count >= 0), e.g.      |
|                        |         |          | pre_click, pre_add_to_cart (``tfrs_app/feedback/``)     |
| pre_<name>_timestamp   | float   | no       | when pre_<name> was recorded (NaN where the signal is 0) |
| item_title             | str     | no       | item title text                                       |
| item_genres            | str     | no       | genres joined by "|", e.g. "Comedy|Drama"             |
| user_<name>            | str     | no       | any other ``user_``-prefixed column is a categorical  |
|                        |         |          | user feature (e.g. user_segment, user_gender)         |

Items (the catalog, one row per item, may hold items nobody interacted with):
``item_id`` (str, unique), ``item_title`` (str), ``item_genres`` (str).

Missing labels stay NaN and are masked out of losses, never filled with zeros.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LABELS = ("engagement", "satisfaction", "responsibility")
REQUIRED = ("user_id", "item_id", "timestamp")
ITEM_TEXT = ("item_title", "item_genres")
GENRE_SEPARATOR = "|"


class SchemaError(ValueError):
    """Input data breaks the interaction schema; the message names the field and the problem."""


@dataclass(frozen=True)
class Interactions:
    """A validated interaction log with its item catalog.

    events: the schema above, sorted by (timestamp, user_id, item_id).
    items: the catalog; every item of ``events`` is in it.
    """

    events: pd.DataFrame
    items: pd.DataFrame

    @property
    def user_features(self) -> tuple[str, ...]:
        return user_feature_columns(self.events)


def pre_signal_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """The ``pre_<name>`` signal columns (not their ``_timestamp`` companions)."""
    return tuple(sorted(c for c in frame.columns if c.startswith("pre_") and not c.endswith("_timestamp")))


def user_feature_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(sorted(c for c in frame.columns if c.startswith("user_") and c != "user_id"))


def validate_interactions(events: pd.DataFrame, items: pd.DataFrame | None = None, source: str = "input") -> Interactions:
    """Checks and canonicalises an interaction log (and optional catalog).

    Returns new frames with canonical dtypes; never mutates its inputs. Raises SchemaError
    naming the column and, where it helps, the first offending row and value.
    """
    if not isinstance(events, pd.DataFrame):
        raise SchemaError(f"{source}: expected a pandas DataFrame, got {type(events).__name__}")
    if len(events) == 0:
        raise SchemaError(f"{source}: the interaction log is empty (0 rows)")
    for column in REQUIRED:
        if column not in events.columns:
            raise SchemaError(f"{source}: missing required column {column!r} (columns: {list(events.columns)})")

    out = pd.DataFrame(index=pd.RangeIndex(len(events)))
    raw = events.reset_index(drop=True)
    for column in ("user_id", "item_id"):
        out[column] = _ids(raw[column], column, source)
    out["timestamp"] = parse_timestamps(raw["timestamp"], "timestamp", source)
    if "rating" in raw.columns:
        out["rating"] = _numeric(raw["rating"], "rating", source)
    for label in LABELS:
        if label in raw.columns:
            out[label] = _binary(raw[label], label, source)
        weight = f"weight_{label}"
        if weight in raw.columns:
            values = _numeric(raw[weight], weight, source)
            bad = ~np.isfinite(values) | (values < 0)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise SchemaError(f"{source}: column {weight!r} must be finite and >= 0, got {float(values[row])!r} at row {row}")
            out[weight] = values
    if "position" in raw.columns:
        out["position"] = _position(raw["position"], source)
    if "conversion_timestamp" in raw.columns:
        _conversions(raw, out, source)
    for column in pre_signal_columns(raw):
        values = _numeric(raw[column], column, source)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SchemaError(f"{source}: pre-conversion signal {column!r} must be a finite number >= 0, "
                              f"got {float(values[row])!r} at row {row}")
        out[column] = values
        stamp = f"{column}_timestamp"
        if stamp in raw.columns:
            out[stamp] = _optional_times(raw[stamp], stamp, source)
            early = np.flatnonzero(out[stamp].to_numpy() < out["timestamp"].to_numpy())
            if early.size:
                raise SchemaError(f"{source}: column {stamp!r} is before the impression's timestamp at row "
                                  f"{int(early[0])}")
    for column in ITEM_TEXT:
        if column in raw.columns:
            out[column] = _text(raw[column], column, source)
    for column in user_feature_columns(raw):
        out[column] = _text(raw[column], column, source)

    out = out.sort_values(["timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    catalog = _catalog(out, items, source)
    return Interactions(events=out, items=catalog)


def parse_timestamps(values: pd.Series, column: str, source: str) -> np.ndarray:
    """Unix seconds (int64) from ints, floats, datetimes or date strings; errors name the row."""
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise SchemaError(f"{source}: column {column!r} has {int(values.isna().sum())} null values (first at row {row})")
    if pd.api.types.is_bool_dtype(values):
        raise SchemaError(f"{source}: column {column!r} must be a time, got booleans")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy().astype(np.int64)
    if pd.api.types.is_datetime64_any_dtype(values):
        return (pd.to_datetime(values, utc=True).astype("int64") // 10**9).to_numpy()
    parsed = pd.to_datetime(values.astype(str), errors="coerce", utc=True, format="mixed")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise SchemaError(f"{source}: column {column!r} has an unparsable timestamp {values.iloc[row]!r} at row {row}")
    return (parsed.astype("int64") // 10**9).to_numpy()


def _optional_times(values: pd.Series, column: str, source: str) -> np.ndarray:
    """Unix seconds as float64 with NaN where the value is missing (a conversion not yet made)."""
    out = np.full(len(values), np.nan)
    known = values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
    if known.any():
        out[known] = parse_timestamps(values[known].reset_index(drop=True), column, source).astype(np.float64)
    return out


def _conversions(raw: pd.DataFrame, out: pd.DataFrame, source: str) -> None:
    """conversion_timestamp (NaN = not converted), never before the impression; engagement follows it."""
    conversion = _optional_times(raw["conversion_timestamp"], "conversion_timestamp", source)
    early = np.flatnonzero(conversion < out["timestamp"].to_numpy())
    if early.size:
        row = int(early[0])
        raise SchemaError(f"{source}: column 'conversion_timestamp' is before the impression's timestamp at row {row} "
                          f"({int(conversion[row])} < {int(out['timestamp'].iloc[row])})")
    converted = (~np.isnan(conversion)).astype(np.float32)
    if "engagement" in out.columns:
        known = ~np.isnan(out["engagement"].to_numpy())
        clash = np.flatnonzero(known & (out["engagement"].to_numpy() != converted))
        if clash.size:
            raise SchemaError(f"{source}: column 'engagement' disagrees with 'conversion_timestamp' at row "
                              f"{int(clash[0])} (engagement is the eventual conversion: 1 exactly where "
                              "conversion_timestamp is set)")
    out["conversion_timestamp"] = conversion
    out["engagement"] = converted


def _ids(values: pd.Series, column: str, source: str) -> np.ndarray:
    nulls = values.isna().to_numpy()
    if nulls.any():
        raise SchemaError(
            f"{source}: column {column!r} has {int(nulls.sum())} null values (first at row {int(np.flatnonzero(nulls)[0])})"
        )
    if pd.api.types.is_float_dtype(values):
        whole = np.mod(values.to_numpy(), 1) == 0
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise SchemaError(f"{source}: column {column!r} holds a non-integer id {values.iloc[row]!r} at row {row}")
        values = values.astype(np.int64)
    text = values.astype(str).str.strip()
    empty = (text == "").to_numpy()
    if empty.any():
        raise SchemaError(f"{source}: column {column!r} has an empty id at row {int(np.flatnonzero(empty)[0])}")
    return text.to_numpy(dtype=object)


def _numeric(values: pd.Series, column: str, source: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.float32).to_numpy()
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(f"{source}: column {column!r} must be numeric, got {values.iloc[row]!r} at row {row}")
    return converted.to_numpy(dtype=np.float32)


def _binary(values: pd.Series, column: str, source: str) -> np.ndarray:
    numbers = _numeric(values, column, source)
    bad = ~np.isnan(numbers) & (numbers != 0) & (numbers != 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(f"{source}: label {column!r} must be 0, 1 or missing, got {float(numbers[row])!r} at row {row}")
    return numbers


def _position(values: pd.Series, source: str) -> np.ndarray:
    numbers = _numeric(values, "position", source)
    numbers = np.where(np.isnan(numbers), -1, numbers)
    bad = (numbers < -1) | (np.mod(numbers, 1) != 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(f"{source}: column 'position' must be a whole number >= 0 (or missing), "
                          f"got {float(numbers[row])!r} at row {row}")
    return numbers.astype(np.int64)


def _text(values: pd.Series, column: str, source: str) -> np.ndarray:
    return values.fillna("").astype(str).to_numpy(dtype=object)


def _catalog(events: pd.DataFrame, items: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """The catalog: the given items table, or the items of the log with their first title/genres."""
    if items is None:
        columns = ["item_id"] + [c for c in ITEM_TEXT if c in events.columns]
        catalog = events[columns].drop_duplicates("item_id").reset_index(drop=True)
    else:
        where = f"{source} items"
        if len(items) == 0:
            raise SchemaError(f"{where}: the item catalog is empty (0 rows)")
        if "item_id" not in items.columns:
            raise SchemaError(f"{where}: missing required column 'item_id' (columns: {list(items.columns)})")
        catalog = pd.DataFrame({"item_id": _ids(items["item_id"].reset_index(drop=True), "item_id", where)})
        for column in ITEM_TEXT:
            if column in items.columns:
                catalog[column] = _text(items[column].reset_index(drop=True), column, where)
        duplicated = catalog["item_id"].duplicated()
        if duplicated.any():
            row = int(np.flatnonzero(duplicated.to_numpy())[0])
            raise SchemaError(f"{where}: duplicate item_id {catalog['item_id'].iloc[row]!r} at row {row}")
        missing = ~events["item_id"].isin(catalog["item_id"])
        if missing.any():
            extra = events.loc[missing, ["item_id"] + [c for c in ITEM_TEXT if c in events.columns]]
            catalog = pd.concat([catalog, extra.drop_duplicates("item_id")], ignore_index=True)
    for column in ITEM_TEXT:
        if column not in catalog.columns:
            catalog[column] = ""
        catalog[column] = catalog[column].fillna("").astype(str)
    return catalog.reset_index(drop=True)
