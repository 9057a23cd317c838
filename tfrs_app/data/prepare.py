"""The data every training stage shares: splits, catalog and feature space of a run directory.

    <run_dir>/data/{train,val,test}.parquet  the splits (with session_id, session_position); items.parquet, the catalog
    <run_dir>/data/config.yaml               the data section and input-file fingerprints they were made from
    <run_dir>/data/report.json               what reading found (delimiter, timestamp unit, duplicates, ...),
                                             the sessions of the whole log and what a session split dropped
    <run_dir>/features.json                  vocabularies and stats (FeatureSpace), train split only

The first stage to run (retrieval or ranker) prepares them; later stages reuse them when the
data section of the config is unchanged, so both models see exactly the same split.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
import yaml

from tfrs_app.config import Config, ConfigError
from tfrs_app.data.sessions import assign_sessions, session_stats
from tfrs_app.data.sources import load_interactions
from tfrs_app.data.splits import Splits, split
from tfrs_app.features.space import FeatureSpace
from tfrs_app.io import atomic_write_json, atomic_write_parquet, atomic_write_text

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test", "items")


@dataclass
class RunData:
    splits: Splits
    catalog: pd.DataFrame
    space: FeatureSpace


def prepare_data(cfg: Config) -> RunData:
    """Loads the run directory's prepared data if it matches ``cfg.data`` and the input files,
    else prepares and writes it.

    Damaged prepared files (deleted or truncated) under an unchanged stamp are prepared again:
    the same data and seed give the same split. A changed data section or input file after a
    model was trained is refused, naming what changed.
    """
    run_dir = Path(cfg.run_dir)
    stamp_path = run_dir / "data" / "config.yaml"
    stamp = _stamp(cfg, run_dir / "data" / "inputs.json")
    previous = _read_stamp(stamp_path)
    why = "no prepared data" if previous is None else _difference(previous, stamp)
    if why is None:
        try:
            data = load_data(run_dir)
            if "session_id" not in data.splits.train.columns:  # same config, split and data: only the columns are new
                raise ValueError("prepared before sessions (no session_id column)")
        except (FileNotFoundError, ValueError) as error:  # a partial earlier run or a damaged file
            log.warning("data: %s; preparing the data again", error)
        else:
            if previous != stamp:  # a stamp from before the input fingerprints: upgraded in place
                atomic_write_text(stamp_path, yaml.safe_dump(stamp, sort_keys=True))
            return data
    trained = [name for name in ("retrieval", "ranker", "graph", "sessions") if (run_dir / name / "checkpoint").exists()]
    if trained and previous is not None and why is not None:
        raise ValueError(f"{run_dir}: {why} since {trained[0]} was trained ({stamp_path}); use a new run_dir, "
                         f"or delete {run_dir} to start over")
    stamp_path.unlink(missing_ok=True)  # rewritten last: a crash below leaves no stamp to trust
    started = time.perf_counter()
    report: dict = {}
    interactions = load_interactions(cfg.data, report)
    check_sizes(cfg, len(interactions.items))
    events = assign_sessions(interactions.events, cfg.data.session_gap_minutes, cfg.data.seed)
    report["sessions"] = session_stats(events)
    dropped: dict = {}
    splits = split(events, cfg.data.split, cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.seed,
                   cfg.data.session_test_days, cfg.data.session_val_days, dropped)
    if dropped:
        report["session_split"] = dropped
    catalog = interactions.items
    for name, frame in zip(PARTS, (splits.train, splits.val, splits.test, catalog)):
        atomic_write_parquet(run_dir / "data" / f"{name}.parquet", frame)
    space = FeatureSpace.fit(splits.train, catalog, cfg.data.history_length, cfg.retrieval.time_buckets)
    space.save(run_dir / "features.json")
    atomic_write_json(run_dir / "data" / "report.json", report)
    atomic_write_text(stamp_path, yaml.safe_dump(stamp, sort_keys=True))
    log.info("data: %s events, %s items, %s sessions (mean length %.1f), splits %s (%.1fs)%s", len(events),
             len(catalog), report["sessions"]["sessions"], report["sessions"]["mean_length"], splits.sizes(),
             time.perf_counter() - started, _read_summary(report))
    return RunData(splits, catalog, space)


def check_sizes(cfg: Config, num_items: int) -> None:
    """Every k the run will ask for fits the catalog (else top-k fails after training)."""
    asks = [("retrieval.eval_ks", k) for k in cfg.retrieval.eval_ks] + [("index.k", cfg.index.k),
                                                                         ("index.recall_k", cfg.index.recall_k)]
    over = [(name, k) for name, k in asks if k > num_items]
    if over:
        listed = ", ".join(f"{name}={k}" for name, k in over)
        ks = sorted({max(1, num_items // 10), num_items})
        fix = [f"retrieval.eval_ks=[{','.join(map(str, ks))}]", f"index.k={num_items}",
               f"index.recall_k={min(10, num_items)}"]
        metric, k = cfg.retrieval.early_stopping_metric.split("@")
        if int(k) > num_items:
            fix.append(f"retrieval.early_stopping_metric={metric}@{num_items}")
        raise ConfigError(f"{over[0][0]}: the catalog has {num_items} items, fewer than {listed}; set smaller values, "
                          "e.g. " + " ".join(f"--set {f}" for f in fix))


def load_data(run_dir: str | Path) -> RunData:
    """The prepared data of a run directory; FileNotFoundError naming what is missing, ValueError
    naming a damaged file."""
    run_dir = Path(run_dir)
    paths = [run_dir / "data" / f"{name}.parquet" for name in PARTS] + [run_dir / "features.json"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: no prepared data ({missing[0]} is missing); run a training stage first")
    frames = {}
    for name in PARTS:
        path = run_dir / "data" / f"{name}.parquet"
        try:
            frames[name] = pd.read_parquet(path)
        except Exception as error:  # noqa: BLE001  pyarrow raises several types for a damaged file
            raise ValueError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    return RunData(Splits(frames["train"], frames["val"], frames["test"]), frames["items"],
                   FeatureSpace.load(run_dir / "features.json"))


def _stamp(cfg: Config, cache: Path) -> dict:
    """What the prepared data depends on: the data section (folders made absolute, so two
    spellings of one folder agree), the feature-space settings, and each input file's size and
    SHA-256 (content, not path or mtime: a copied or touched file is the same data)."""
    data = cfg.to_dict()["data"]
    for name in ("manual_dir", "data_dir"):
        if data[name]:
            data[name] = str(Path(data[name]).resolve())
    cached = _read_stamp(cache) or {}
    known = dict(cached)
    inputs = {}
    for name in ("path", "items_path"):
        if data[name]:
            data[name] = str(Path(data[name]).resolve())
            inputs[name], known[data[name]] = input_fingerprint(data[name], known.get(data[name]))
    if known != cached:
        atomic_write_json(cache, known)
    return {"data": data, "inputs": inputs, "time_buckets": cfg.retrieval.time_buckets}


def input_fingerprint(path: str, cached: Optional[dict] = None) -> tuple[dict, dict]:
    """({size, sha256} of the file's content, the cache entry {size, mtime_ns, sha256}). The hash is
    reused from ``cached`` when size and mtime still match, so an unchanged large log is not re-read."""
    p = Path(path)
    if not p.is_file():
        return {"missing": True}, {}
    stat = p.stat()
    if cached and cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns:
        digest = cached["sha256"]
    else:
        sha = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        digest = sha.hexdigest()
    return {"size": stat.st_size, "sha256": digest}, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}


def _read_stamp(path: Path) -> Optional[dict]:
    """A YAML (or JSON, which YAML reads too) mapping, or None when missing or unreadable."""
    try:
        stamp = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _difference(before: dict, after: dict) -> Optional[str]:
    """What differs between two stamps, in words, or None. Keys a stamp predates count as their
    defaults; input paths are compared by content, and inputs only where the old stamp has them."""
    old = {**Config().to_dict()["data"], **before.get("data", {})}
    new = after["data"]
    for key in sorted(set(old) | set(new)):
        if key not in ("path", "items_path") and old.get(key) != new.get(key):
            return f"the data section differs (data.{key}: {old.get(key)!r} -> {new.get(key)!r})"
    if before.get("time_buckets") != after["time_buckets"]:
        return f"retrieval.time_buckets differs ({before.get('time_buckets')} -> {after['time_buckets']})"
    for name, fingerprint in after["inputs"].items() if "inputs" in before else ():
        if before["inputs"].get(name) != fingerprint:
            return f"the input file data.{name} ({new[name]}) changed"
    return None


def _read_summary(report: dict) -> str:
    file = report.get("file", {})
    parts = []
    if "delimiter" in file:
        parts.append(f"delimiter {file['delimiter']!r}{' (detected)' if file.get('delimiter_detected') else ''}")
    if "timestamp_unit" in report:
        parts.append(f"timestamps read as {report['timestamp_unit']}")
    if report.get("duplicate_rows"):
        parts.append(f"{report['duplicate_rows']} exact duplicate rows ({report['duplicates']})")
    for column, why in report.get("shadowed_columns", {}).items():
        parts.append(f"file column {column!r} {why}")
    return "; " + "; ".join(parts) if parts else ""
