"""The data every training stage shares: splits, catalog and feature space of a run directory.

    <run_dir>/data/{train,val,test}.parquet  the splits; items.parquet, the catalog
    <run_dir>/data/config.yaml               the data section they were made from
    <run_dir>/features.json                  vocabularies and stats (FeatureSpace), train split only

The first stage to run (retrieval or ranker) prepares them; later stages reuse them when the
data section of the config is unchanged, so both models see exactly the same split.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from tfrs_app.config import Config
from tfrs_app.data.sources import load_interactions
from tfrs_app.data.splits import Splits, split
from tfrs_app.features.space import FeatureSpace
from tfrs_app.io import atomic_write_parquet, atomic_write_text

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test", "items")


@dataclass
class RunData:
    splits: Splits
    catalog: pd.DataFrame
    space: FeatureSpace


def prepare_data(cfg: Config) -> RunData:
    """Loads the run directory's prepared data if it matches ``cfg.data``, else prepares and writes it."""
    run_dir = Path(cfg.run_dir)
    stamp = _stamp(cfg)
    stamp_path = run_dir / "data" / "config.yaml"
    if stamp_path.exists() and stamp_path.read_text() == stamp:
        try:
            return load_data(run_dir)
        except FileNotFoundError:
            pass  # a partial earlier run: prepare again
    trained = [name for name in ("retrieval", "ranker") if (run_dir / name / "checkpoint").exists()]
    if trained and stamp_path.exists():
        raise ValueError(f"{run_dir}: the data section differs from the one {trained[0]} was trained on "
                         f"({stamp_path}); use a new run_dir, or delete {run_dir} to start over")
    stamp_path.unlink(missing_ok=True)  # rewritten last: a crash below leaves no stamp to trust
    started = time.perf_counter()
    interactions = load_interactions(cfg.data)
    splits = split(interactions.events, cfg.data.split, cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.seed)
    catalog = interactions.items
    for name, frame in zip(PARTS, (splits.train, splits.val, splits.test, catalog)):
        atomic_write_parquet(run_dir / "data" / f"{name}.parquet", frame)
    space = FeatureSpace.fit(splits.train, catalog, cfg.data.history_length, cfg.retrieval.time_buckets)
    space.save(run_dir / "features.json")
    atomic_write_text(run_dir / "data" / "config.yaml", stamp)
    log.info("data: %s events, %s items, splits %s (%.1fs)", len(interactions.events), len(catalog),
             splits.sizes(), time.perf_counter() - started)
    return RunData(splits, catalog, space)


def load_data(run_dir: str | Path) -> RunData:
    """The prepared data of a run directory; FileNotFoundError naming what is missing."""
    run_dir = Path(run_dir)
    paths = [run_dir / "data" / f"{name}.parquet" for name in PARTS] + [run_dir / "features.json"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: no prepared data ({missing[0]} is missing); run a training stage first")
    frames = {name: pd.read_parquet(run_dir / "data" / f"{name}.parquet") for name in PARTS}
    return RunData(Splits(frames["train"], frames["val"], frames["test"]), frames["items"],
                   FeatureSpace.load(run_dir / "features.json"))


def _stamp(cfg: Config) -> str:
    """What the prepared data depends on: the data section and the feature-space settings."""
    return yaml.safe_dump({"data": cfg.to_dict()["data"], "time_buckets": cfg.retrieval.time_buckets}, sort_keys=True)
