"""CSV and Parquet interaction logs, through a column mapping.

``columns`` maps our schema's names to the file's, e.g. for MovieLens' own ratings.csv::

    columns: {user_id: userId, item_id: movieId, timestamp: timestamp, rating: rating}

Columns not mentioned keep their names, so a file already in our schema needs no mapping.
The mapping wins over a file column of the same name (``timestamp: time_ms`` in a file that
also has ``timestamp`` drops the file's ``timestamp``, and says so), and two fields may map to
one column (``satisfaction: label, responsibility: label`` copies it). An optional items file
(``items_path``, same mapping) supplies the catalog and the item text features.

What was read is recorded in ``report`` (delimiter, encoding, shadowed columns) and shown by
``tfrs-app validate``; a bad byte is reported with its file, line and column.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping, Optional

import pandas as pd

from tfrs_app.data.schema import Interactions, ReadOptions, SchemaError, validate_interactions

DELIMITERS = (",", "\t", ";", "|")
_SNIFF_BYTES = 1 << 16
# pandas' default missing-value strings, kept for every column but the ids
_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
       "NULL", "NaN", "None", "n/a", "nan", "null"]


def load_tabular(path: str, columns: Optional[Mapping[str, str]] = None, items_path: Optional[str] = None,
                 fmt: Optional[str] = None, delimiter: Optional[str] = None, encoding: str = "utf-8",
                 options: ReadOptions = ReadOptions(), report: Optional[dict] = None,
                 problems: Optional[list] = None) -> Interactions:
    """Reads ``path`` (csv or parquet, by ``fmt`` or suffix), applies the mapping, validates.

    ``report`` (a dict) receives what was detected; ``problems`` (a list) collects every schema
    problem instead of raising at the first (see ``validate_interactions``).
    """
    report = {} if report is None else report
    columns = dict(columns or {})
    id_columns = [columns.get(name, name) for name in ("user_id", "item_id")]
    events = _read(path, fmt, delimiter, encoding, id_columns, report.setdefault("file", {}))
    events = _mapped(events, columns, str(path), report)
    items = None
    if items_path:
        item_info = report.setdefault("items_file", {})
        items = _read(items_path, fmt, delimiter, encoding, [columns.get("item_id", "item_id")], item_info)
        items = _mapped(items, {k: v for k, v in columns.items() if v in items.columns}, str(items_path), {})
    return validate_interactions(events, items, source=str(path), options=options, report=report, problems=problems)


def _mapped(frame: pd.DataFrame, columns: Mapping[str, str], where: str, report: dict) -> pd.DataFrame:
    """The frame under schema names: mapped columns (copied, so one column may feed two fields),
    then the file's other columns, except those a mapping replaces."""
    text_fields = ("item_title", "item_genres")  # may live in the items file only
    missing = [f for f, v in columns.items() if v not in frame.columns and f not in text_fields]
    if missing:
        field = missing[0]
        raise SchemaError(f"{where}: column mapping {field} -> {columns[field]!r}, but the file has no column "
                          f"{columns[field]!r} (columns: {list(frame.columns)})")
    present = {f: v for f, v in columns.items() if v in frame.columns}
    sources = set(present.values())
    shadowed = [c for c in frame.columns if c in present and c not in sources]
    if shadowed:
        report["shadowed_columns"] = {c: f"replaced by the mapping {c} -> {present[c]!r}" for c in shadowed}
    out = {field: frame[column] for field, column in present.items()}
    for column in frame.columns:
        if column not in sources and column not in out:
            out[column] = frame[column]
    return pd.DataFrame(out)


def _read(path: str, fmt: Optional[str], delimiter: Optional[str], encoding: str, id_columns: list[str],
          info: dict) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data.path: no such file {path!r}")
    if p.is_dir():
        raise SchemaError(f"data.path: {path!r} is a folder, not a file")
    kind = fmt or ("parquet" if p.suffix in (".parquet", ".pq") else "csv")
    info.update(path=str(p.resolve()), format=kind)
    if kind == "parquet":
        try:
            return pd.read_parquet(p)
        except Exception as error:  # noqa: BLE001  pyarrow raises several types for a non-parquet file
            raise SchemaError(f"{path}: not a readable parquet file ({type(error).__name__}: {error})") from None
    info["encoding"] = encoding
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # Excel's "CSV UTF-8" starts with a byte-order mark; without one it is utf-8
    with p.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if not head.strip():
        raise SchemaError(f"{path}: the file is empty")
    sample = head.decode(encoding, errors="replace")  # a bad byte is located below, with its column
    info["delimiter"] = delimiter or sniff_delimiter(sample)
    info["delimiter_detected"] = delimiter is None
    header = next(csv.reader(io.StringIO(sample.splitlines()[0]), delimiter=info["delimiter"]), [])
    try:
        head.decode(encoding)
    except UnicodeDecodeError as error:
        cut = p.stat().st_size > _SNIFF_BYTES and error.start >= len(head) - 4  # a character split by the sample
        if not cut:
            raise SchemaError(_bad_byte(p, encoding, info["delimiter"], header)) from None
    ids = [c for c in id_columns if c in header]
    try:  # ids keep what is written: "NA", "null" or "None" are ids there, only an empty field is missing
        return pd.read_csv(p, sep=info["delimiter"], encoding=encoding, dtype={c: str for c in ids},
                           keep_default_na=False, na_values={c: ([""] if c in ids else _NA) for c in header})
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise SchemaError(_bad_byte(p, encoding, info["delimiter"], header)) from None
    except pd.errors.ParserError as error:
        raise SchemaError(f"{path}: cannot parse with delimiter {info['delimiter']!r} ({error}); "
                          "set data.delimiter") from None


def sniff_delimiter(sample: str) -> str:
    """The candidate that splits the header and the first lines into the same number (> 1) of
    fields, the most fields winning; ',' for a one-column file."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the sample may cut the last line short
    best, best_fields = ",", 1
    for candidate in DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = candidate, fields
    return best


def _bad_byte(path: Path, encoding: str, delimiter: str, header: list[str]) -> str:
    """Where the first undecodable byte is: line, column name and the byte."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as error:
                before = line[:error.start].decode(encoding, errors="replace")
                field = before.count(delimiter)
                name = header[field] if field < len(header) else f"field {field + 1}"
                row = f", data row {number - 2}" if number > 1 else " (the header)"
                return (f"{path}: byte 0x{line[error.start]:02x} at line {number}{row}, column {name!r}, is not valid "
                        f"{encoding.removesuffix('-sig')}; set data.encoding (e.g. latin-1 or cp1252)")
    return f"{path}: not valid {encoding}; set data.encoding"

