"""``tfrs-app validate``: a log checked against the schema without training.

``check_source(cfg)`` reads the configured source as training would, but collects every
problem instead of stopping at the first, and returns what reading detected (delimiter,
timestamp unit, duplicates, id type, label coverage per head). Rows count from 0 at the first
data row (line 2 of a CSV file with a header).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfrs_app.config import HEADS, Config, ConfigError
from tfrs_app.data.schema import LABEL_SOURCES, UNIT_NAMES, describe, label_problem


@dataclass
class Validation:
    source: str
    report: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_source(cfg: Config) -> Validation:
    from tfrs_app.data.prepare import check_sizes
    from tfrs_app.data.sources import load_interactions

    data = cfg.data
    out = Validation(f"{data.source} {data.path}" if data.path else data.source)
    try:
        interactions = load_interactions(data, out.report, out.problems)
    except (FileNotFoundError, ValueError) as error:  # the file cannot be read at all (SchemaError is a ValueError)
        out.problems.append(str(error))
        return out
    if "rows" not in out.report:  # sources that validate internally (synthetic, MovieLens)
        out.report.update(describe(interactions.events, interactions.items))
    events = interactions.events
    for head in HEADS:
        if cfg.ranker.loss_weights.get(head, 1.0) == 0:
            continue
        absent = 1.0 if head == "engagement" else np.nan  # a logged event is an engagement unless it says not
        labels = events[head].to_numpy(dtype=float) if head in events.columns else np.full(len(events), absent)
        if head == "engagement" and cfg.ranker.negatives_per_positive > 0:
            labels = np.append(labels, 0.0)  # the ranker samples unengaged impressions: the 0 class
        what = label_problem(labels)
        if what:
            out.problems.append(f"ranker head {head!r}: {what} in the log (train-ranker will refuse it); the head "
                                f"needs {LABEL_SOURCES[head]}, or set ranker.loss_weights.{head}=0")
    if out.report["catalog_items"] is not None:  # unknown when the item ids themselves are broken
        try:
            check_sizes(cfg, out.report["catalog_items"])
        except ConfigError as error:
            out.problems.append(str(error))
    return out


def format_validation(result: Validation) -> str:
    r = result.report
    lines = [f"source: {result.source}"]
    file = r.get("file", {})
    if "delimiter" in file:
        how = "detected" if file["delimiter_detected"] else "data.delimiter"
        lines.append(f"file: {file['path']}, delimiter {file['delimiter']!r} ({how}), encoding {file['encoding']}")
    if "rows" in r:
        def count(key: str) -> str:
            return "?" if r[key] is None else str(r[key])

        lines.append(f"rows: {r['rows']} events, {count('users')} users, {count('items_in_log')} items in the log, "
                     f"{count('catalog_items')} in the catalog")
    if "timestamp_unit" in r:
        unit = r["timestamp_unit"]
        how = {"auto": " (detected from their magnitude)"}.get(r.get("timestamp_unit_setting"), " (data.timestamp_unit)")
        lines.append(f"timestamps: read as {UNIT_NAMES[unit] + how if unit in UNIT_NAMES else unit}")
    if "id_type" in r:
        lines.append(f"ids: {r['id_type']}" + (" (exactly as written)" if r["id_type"] == "str" else " (integers)"))
    if "duplicate_rows" in r:
        first = f", first at row {r['duplicate_first_row']}" if r["duplicate_rows"] else ""
        lines.append(f"duplicates: {r['duplicate_rows']} exact duplicate rows{first} "
                     f"({'dropped' if r['duplicates'] == 'drop' else 'kept'}; data.duplicates)")
    for column, why in r.get("shadowed_columns", {}).items():
        lines.append(f"mapping: file column {column!r} {why}")
    if "label_coverage" in r:
        total = max(1, r["rows"])
        lines.append("label coverage: " + ", ".join(f"{head} {n}/{r['rows']} ({100 * n / total:.1f}%)"
                                                     for head, n in r["label_coverage"].items()))
    if result.problems:
        lines.append(f"problems ({len(result.problems)}):")
        lines += [f"  - {p}" for p in result.problems]
    else:
        lines.append("no problems found")
    return "\n".join(lines)
