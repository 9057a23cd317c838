"""The one interaction schema every source is turned into, and its validation at the edge.

Interactions (one row per logged event, a pandas DataFrame):

| column                 | dtype   | required | meaning                                               |
| ---------------------- | ------- | -------- | ----------------------------------------------------- |
| user_id                | str     | yes      | who                                                   |
| item_id                | str     | yes      | what                                                  |
| session_id             | str     | no       | the session of the event, within its user; read as    |
|                        |         |          | written whatever ``id_type`` (session ids are often   |
|                        |         |          | UUIDs beside integer item ids). Without it, sessions  |
|                        |         |          | are cut at gaps (``tfrs_app/data/sessions.py``)       |
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
from typing import Optional

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


@dataclass(frozen=True)
class ReadOptions:
    """How raw columns are read (``data.*`` of the config; see ``DataConfig``).

    timestamp_unit: auto | s | ms | us | ns, for numeric timestamps; timestamp_format: strptime
    format for string timestamps (None: ISO 8601, or a day/month order the data proves);
    id_type: str (exactly as written) | int; duplicates: keep | drop exact duplicate rows;
    labels_from_rating: derive engagement / satisfaction / responsibility from ``rating``.
    """

    timestamp_unit: str = "auto"
    timestamp_format: Optional[str] = None
    id_type: str = "str"
    duplicates: str = "keep"
    labels_from_rating: bool = False
    rating_satisfied: float = 4.0
    rating_irresponsible: float = 1.0


def validate_interactions(events: pd.DataFrame, items: pd.DataFrame | None = None, source: str = "input",
                          options: ReadOptions = ReadOptions(), report: Optional[dict] = None,
                          problems: Optional[list] = None) -> Interactions:
    """Checks and canonicalises an interaction log (and optional catalog).

    Returns new frames with canonical dtypes; never mutates its inputs. Raises SchemaError
    naming the column and, where it helps, the first offending row (rows count from 0, the
    first data row) and value. With a ``problems`` list, every column's problem is appended
    there instead and the column is left out (``tfrs-app validate`` lists them all); ``report``
    receives what was detected (timestamp unit, duplicates, label coverage).
    """
    report = {} if report is None else report
    if not isinstance(events, pd.DataFrame):
        raise SchemaError(f"{source}: expected a pandas DataFrame, got {type(events).__name__}")
    if len(events) == 0:
        raise SchemaError(f"{source}: the interaction log is empty (0 rows)")
    missing = [column for column in REQUIRED if column not in events.columns]
    for column in missing:
        _problem(problems, SchemaError(f"{source}: missing required column {column!r} (columns: {list(events.columns)})"))

    def checked(fn, *args):
        try:
            return fn(*args)
        except SchemaError as error:
            _problem(problems, error)
            return None

    out = pd.DataFrame(index=pd.RangeIndex(len(events)))
    raw = events.reset_index(drop=True)
    ids_failed = {}  # only in problems mode: placeholders keep the report going, its counts then unknown
    for column in ("user_id", "item_id"):
        ids = checked(_ids, raw[column], column, source, options.id_type) if column in raw.columns else None
        ids_failed[column] = ids is None
        out[column] = "?" if ids is None else ids
    if "session_id" in raw.columns:
        sessions = checked(_ids, raw["session_id"], "session_id", source)
        if sessions is not None:
            out["session_id"] = sessions
    stamps = None
    if "timestamp" in raw.columns:
        stamps = checked(_parse_timestamps, raw["timestamp"], "timestamp", source, options)
    if stamps is not None:
        stamps, report["timestamp_unit"] = stamps
        report["timestamp_unit_setting"] = options.timestamp_unit
    out["timestamp"] = 0 if stamps is None else stamps
    if "rating" in raw.columns:
        rating = checked(_numeric, raw["rating"], "rating", source)
        if rating is not None:
            out["rating"] = rating
    if options.labels_from_rating:
        checked(_labels_from_rating, raw, out, source, options)
    for label in LABELS:
        if label in raw.columns and label not in out.columns:
            values = checked(_binary, raw[label], label, source)
            if values is not None:
                out[label] = values
        weight = f"weight_{label}"
        if weight in raw.columns:
            values = checked(_non_negative, raw[weight], weight, source, f"column {weight!r} must be finite and >= 0")
            if values is not None:
                out[weight] = values
    if "position" in raw.columns:
        values = checked(_position, raw["position"], source)
        if values is not None:
            out["position"] = values
    if "conversion_timestamp" in raw.columns and stamps is not None:
        checked(_conversions, raw, out, source, options)
    for column in pre_signal_columns(raw):
        values = checked(_non_negative, raw[column], column, source,
                         f"pre-conversion signal {column!r} must be a finite number >= 0")
        if values is None:
            continue
        out[column] = values
        stamp = f"{column}_timestamp"
        if stamp in raw.columns:
            times = checked(_optional_times, raw[stamp], stamp, source, options)
            if times is None:
                continue
            out[stamp] = times
            early = np.flatnonzero(out[stamp].to_numpy() < out["timestamp"].to_numpy())
            if early.size:
                _problem(problems, SchemaError(f"{source}: column {stamp!r} is before the impression's timestamp at "
                                               f"row {int(early[0])}"))
    for column in ITEM_TEXT:
        if column in raw.columns:
            out[column] = _text(raw[column], column, source)
    for column in user_feature_columns(raw):
        out[column] = _text(raw[column], column, source)

    duplicated = raw.duplicated().to_numpy()  # the rows as given (every column, times unrounded)
    report["duplicate_rows"] = int(duplicated.sum())
    if duplicated.any():
        report["duplicate_first_row"] = int(np.flatnonzero(duplicated)[0])
        if options.duplicates == "drop":
            out = out[~duplicated]
    report["duplicates"] = options.duplicates
    report["id_type"] = options.id_type
    out = out.sort_values(["timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    catalog = checked(_catalog, out, items, source, options.id_type)
    if catalog is None:
        catalog = _catalog(out, None, source, options.id_type)
    # item features come from the catalog (the items table), so a log without text columns trains
    text = catalog.set_index("item_id")
    for column in ITEM_TEXT:
        out[column] = text[column].reindex(out["item_id"]).fillna("").to_numpy(dtype=object)
    report.update(describe(out, catalog))
    if ids_failed["user_id"]:
        report["users"] = None
    if ids_failed["item_id"]:
        report["items_in_log"] = report["catalog_items"] = None
    return Interactions(events=out, items=catalog)


def describe(events: pd.DataFrame, catalog: pd.DataFrame) -> dict:
    """Row, user and item counts and the number of known labels per head."""
    return {"rows": int(len(events)), "users": int(events["user_id"].nunique()),
            "items_in_log": int(events["item_id"].nunique()), "catalog_items": int(len(catalog)),
            "label_coverage": {label: (int(np.isfinite(events[label]).sum()) if label in events.columns else 0)
                               for label in LABELS}}


# What feeds each ranker head, for the errors that refuse a head without labels.
LABEL_SOURCES = {
    "engagement": "an 'engagement' column (1 acted on / 0 shown only), a 'conversion_timestamp' column, or "
                  "'rating' with data.labels_from_rating=true",
    "satisfaction": "a 'satisfaction' column (0/1), or 'rating' with data.labels_from_rating=true",
    "responsibility": "a 'responsibility' column (0/1), or 'rating' with data.labels_from_rating=true",
}


def label_problem(labels: np.ndarray) -> Optional[str]:
    """Why a head cannot learn from ``labels`` ([N] float, NaN unknown), or None: it needs both classes."""
    known = labels[~np.isnan(labels)]
    if known.size == 0:
        return "no labels"
    if np.all(known == known[0]):
        return f"labels of one class only (all {int(known[0])})"
    return None


def _problem(problems: Optional[list], error: SchemaError) -> None:
    if problems is None:
        raise error
    problems.append(str(error))


def _non_negative(values: pd.Series, column: str, source: str, message: str) -> np.ndarray:
    numbers = _numeric(values, column, source)
    bad = ~np.isfinite(numbers) | (numbers < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(f"{source}: {message}, got {float(numbers[row])!r} at row {row}")
    return numbers


def _labels_from_rating(raw: pd.DataFrame, out: pd.DataFrame, source: str, options: ReadOptions) -> None:
    """The MovieLens mapping (ARCHITECTURE.md section 2): a rating is an engagement; satisfied
    at >= rating_satisfied; irresponsible at <= rating_irresponsible. Unrated rows stay unknown."""
    if "rating" not in out.columns:
        raise SchemaError(f"{source}: data.labels_from_rating needs a 'rating' column "
                          f"(map yours with data.columns.rating), columns: {list(raw.columns)}")
    present = [label for label in LABELS if label in raw.columns]
    if present:
        raise SchemaError(f"{source}: data.labels_from_rating derives {present[0]!r}, but the log has that column too; "
                          "map one or the other")
    rating = out["rating"].to_numpy(dtype=np.float32)
    rated = ~np.isnan(rating)
    out["engagement"] = np.where(rated, 1.0, np.nan).astype(np.float32)
    out["satisfaction"] = np.where(rated, rating >= options.rating_satisfied, np.nan).astype(np.float32)
    out["responsibility"] = np.where(rated, rating > options.rating_irresponsible, np.nan).astype(np.float32)


# Unix seconds must fall in [1970, 2300): beyond is a unit error (milliseconds read as seconds), not a date.
MAX_SECONDS = 10_413_792_000
UNIT_SCALE = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_AUTO_BANDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"), (np.inf, "ns"))  # magnitude below -> unit
_DAY_MONTH = r"^\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{2,4})\b"


def _parse_timestamps(values: pd.Series, column: str, source: str, options: ReadOptions) -> tuple[np.ndarray, str]:
    """(Unix seconds int64, how they were read: a unit or a format) from numbers
    (``options.timestamp_unit``), datetimes or date strings; errors name the real row."""
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise SchemaError(f"{source}: column {column!r} has {int(values.isna().sum())} null values (first at row {row})")
    if pd.api.types.is_bool_dtype(values):
        raise SchemaError(f"{source}: column {column!r} must be a time, got booleans")
    if pd.api.types.is_datetime64_any_dtype(values):  # any unit: parquet keeps the file's (Spark writes us)
        return _checked_seconds(pd.to_datetime(values, utc=True), values, column, source), "datetime"
    if options.timestamp_format is not None:  # a format wins over the dtype (20230101 reads as an int)
        text = values.astype(str)
        parsed = pd.to_datetime(text, format=options.timestamp_format, errors="coerce", utc=True)
        _no_nat(parsed, text, column, source, f" for data.timestamp_format {options.timestamp_format!r}")
        return _checked_seconds(parsed, text, column, source), options.timestamp_format
    if not pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().mean() >= 0.5:
            return _parse_dates(values.astype(str), column, source)
        if numbers.isna().any():  # an epoch column with a few bad strings: name the first one
            row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
            raise SchemaError(f"{source}: column {column!r} holds epoch numbers, but {values.iloc[row]!r} at row {row} "
                              "is not a number")
        values = numbers
    numbers = values.to_numpy(dtype=np.float64)
    values = pd.Series(values.tolist(), dtype=object)  # plain Python numbers in messages
    negative = np.flatnonzero(numbers < 0)
    if negative.size:
        row = int(negative[0])
        raise SchemaError(f"{source}: column {column!r} has a negative timestamp {values.iloc[row]!r} at row {row}")
    unit = options.timestamp_unit
    if unit == "auto" and _all_yyyymmdd(numbers):
        raise SchemaError(f"{source}: column {column!r} looks like YYYYMMDD dates ({values.iloc[0]!r} at row 0), not "
                          "epoch seconds; set data.timestamp_format='%Y%m%d' (or data.timestamp_unit=s if they are seconds)")
    if unit == "auto":
        bands = np.searchsorted([b for b, _ in _AUTO_BANDS], numbers, side="right")
        found = np.unique(bands)
        if found.size > 1:
            first = {int(b): int(np.flatnonzero(bands == b)[0]) for b in found}
            seen = ", ".join(f"{UNIT_NAMES[_AUTO_BANDS[b][1]]} (row {r}: {values.iloc[r]!r})" for b, r in first.items())
            raise SchemaError(f"{source}: column {column!r} mixes timestamp units: {seen}; convert the column to one "
                              "unit, or set data.timestamp_unit")
        unit = _AUTO_BANDS[int(found[0])][1]
    seconds = np.floor(numbers / UNIT_SCALE[unit])
    beyond = np.flatnonzero(seconds >= MAX_SECONDS)
    if beyond.size:
        row = int(beyond[0])
        raise SchemaError(f"{source}: column {column!r}: {values.iloc[row]!r} at row {row} is after the year 2300 read as "
                          f"{UNIT_NAMES[unit]}; set data.timestamp_unit (s, ms, us or ns)")
    return seconds.astype(np.int64), unit


def _parse_dates(text: pd.Series, column: str, source: str) -> tuple[np.ndarray, str]:
    """Date strings without a format: ISO 8601; else d/m/Y or m/d/Y only where some day > 12 proves
    the order (pandas alone reads each row month-first when it can, silently swapping the rest)."""
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    if not parsed.isna().any():
        return _checked_seconds(parsed, text, column, source), "ISO 8601"
    parts = text.str.extract(_DAY_MONTH)
    slashed = parts[0].notna().to_numpy()
    if slashed.any() and not slashed.all():
        a, b = int(np.flatnonzero(slashed)[0]), int(np.flatnonzero(~slashed)[0])
        raise SchemaError(f"{source}: column {column!r} mixes date formats ({text.iloc[a]!r} at row {a}, {text.iloc[b]!r} "
                          f"at row {b}); write one format, or set data.timestamp_format")
    if slashed.all():
        first, second = parts[0].astype(int), parts[2].astype(int)
        day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
        if day_first == month_first:
            why = "both orders appear" if day_first else "no day is above 12, so the order is ambiguous"
            raise SchemaError(f"{source}: column {column!r} holds dd/mm or mm/dd dates and {why}; set "
                              "data.timestamp_format, e.g. '%d/%m/%Y'")
        parsed = pd.to_datetime(text, dayfirst=day_first, format="mixed", errors="coerce", utc=True)
        _no_nat(parsed, text, column, source, "")
        return _checked_seconds(parsed, text, column, source), "day first" if day_first else "month first"
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    _no_nat(parsed, text, column, source, "")
    return _checked_seconds(parsed, text, column, source), "dates"


def _no_nat(parsed: pd.Series, values: pd.Series, column: str, source: str, why: str) -> None:
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise SchemaError(f"{source}: column {column!r} has an unparsable timestamp {values.iloc[row]!r} at row {row}{why}")


def _all_yyyymmdd(numbers: np.ndarray) -> bool:
    """Every value an 8-digit calendar date from 1900 to 2099 (as seconds they would all be 1970)."""
    if not np.all((numbers >= 19000101) & (numbers <= 20991231) & (np.mod(numbers, 1) == 0)):
        return False
    parsed = pd.to_datetime(pd.Series(numbers.astype(np.int64)).astype(str), format="%Y%m%d", errors="coerce")
    return bool(parsed.notna().all())


def _checked_seconds(parsed: pd.Series, values: pd.Series, column: str, source: str) -> np.ndarray:
    """Whole Unix seconds of a tz-aware datetime series (any resolution), inside 1970-2300."""
    seconds = ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    bad = np.flatnonzero((seconds < 0) | (seconds >= MAX_SECONDS))
    if bad.size:
        row = int(bad[0])
        raise SchemaError(f"{source}: column {column!r}: {values.iloc[row]!r} at row {row} is outside 1970-2300")
    return seconds


def _optional_times(values: pd.Series, column: str, source: str, options: ReadOptions = ReadOptions()) -> np.ndarray:
    """Unix seconds as float64 with NaN where the value is missing (a conversion not yet made)."""
    out = np.full(len(values), np.nan)
    known = values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
    if known.any():
        out[known] = _parse_timestamps(values[known].reset_index(drop=True), column, source, options)[0].astype(np.float64)
    return out


def _conversions(raw: pd.DataFrame, out: pd.DataFrame, source: str, options: ReadOptions) -> None:
    """conversion_timestamp (NaN = not converted), never before the impression; engagement follows it."""
    conversion = _optional_times(raw["conversion_timestamp"], "conversion_timestamp", source, options)
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


def _ids(values: pd.Series, column: str, source: str, id_type: str = "str") -> np.ndarray:
    """Ids as strings. ``str``: exactly as written (trimmed), so ``00001`` stays ``00001``; a float
    column (a parquet or in-memory frame) holds whole numbers, written without ``.0``. ``int``:
    integers, so ``1``, ``01`` and ``1.0`` are one id."""
    nulls = values.isna().to_numpy()
    if nulls.any():
        raise SchemaError(
            f"{source}: column {column!r} has {int(nulls.sum())} null values (first at row {int(np.flatnonzero(nulls)[0])})"
        )
    if not pd.api.types.is_integer_dtype(values) and (id_type == "int" or pd.api.types.is_float_dtype(values)):
        values = _integer_ids(values, column, source, id_type)
    text = values.astype(str).str.strip()
    empty = (text == "").to_numpy()
    if empty.any():
        raise SchemaError(f"{source}: column {column!r} has an empty id at row {int(np.flatnonzero(empty)[0])}")
    return text.to_numpy(dtype=object)


_INTEGER = r"^\s*([+-]?\d+)(?:\.0*)?\s*$"


def _integer_ids(values: pd.Series, column: str, source: str, id_type: str) -> pd.Series:
    """Whole-number ids as exact Python ints: strings by pattern (``007``, ``7.0`` -> 7, any size),
    floats only up to 2**53, where float64 is still exact (19-digit ids would merge)."""
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers) | (np.mod(numbers, 1) != 0) | (np.abs(numbers) > 2**53)
    else:
        digits = values.astype(str).str.extract(_INTEGER)[0]
        bad = digits.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        why = " (data.id_type is int)" if id_type == "int" else " (a float column: whole numbers up to 2**53 only)"
        raise SchemaError(f"{source}: column {column!r} holds a non-integer id {values.iloc[row]!r} at row {row}{why}")
    return pd.Series(numbers.astype(np.int64)) if pd.api.types.is_float_dtype(values) else digits.map(int)


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


def _catalog(events: pd.DataFrame, items: pd.DataFrame | None, source: str, id_type: str = "str") -> pd.DataFrame:
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
        catalog = pd.DataFrame({"item_id": _ids(items["item_id"].reset_index(drop=True), "item_id", where, id_type)})
        for column in ITEM_TEXT:
            if column in items.columns:
                catalog[column] = _text(items[column].reset_index(drop=True), column, where)
            elif column in events.columns:  # the table lacks it: keep the log's, never erase it
                first = events.drop_duplicates("item_id").set_index("item_id")[column]
                catalog[column] = first.reindex(catalog["item_id"]).fillna("").to_numpy(dtype=object)
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
