"""``load_interactions(DataConfig)``: the one place a data config becomes an interaction log."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from tfrs_app.config import DataConfig
from tfrs_app.data.schema import Interactions, ReadOptions


def read_options(cfg: DataConfig) -> ReadOptions:
    return ReadOptions(timestamp_unit=cfg.timestamp_unit, timestamp_format=cfg.timestamp_format, id_type=cfg.id_type,
                       duplicates=cfg.duplicates, labels_from_rating=cfg.labels_from_rating,
                       rating_satisfied=cfg.rating_satisfied, rating_irresponsible=cfg.rating_irresponsible)


def load_interactions(cfg: DataConfig, report: Optional[dict] = None, problems: Optional[list] = None) -> Interactions:
    """The validated log of ``cfg``; ``report`` receives what was detected (tabular sources),
    ``problems`` collects every schema problem instead of raising at the first."""
    if cfg.manual_dir and not Path(cfg.manual_dir).is_dir():  # else tfds retries downloading for minutes
        raise FileNotFoundError(f"data.manual_dir: no such folder {cfg.manual_dir!r} (resolved: {Path(cfg.manual_dir).resolve()})")
    if cfg.source == "synthetic":
        from tfrs_app.data.synthetic import generate

        return generate(**dataclasses.asdict(cfg.synthetic)).interactions
    if cfg.source == "synthetic_delayed":
        from tfrs_app.feedback.synthetic import generate_delayed

        return generate_delayed(cfg.delayed).interactions
    if cfg.source == "synthetic_directed":
        from tfrs_app.graph.synthetic import generate_directed

        return generate_directed(cfg.directed).interactions
    if cfg.source == "synthetic_sequential":
        from tfrs_app.sequences.synthetic import generate_sequential

        return generate_sequential(cfg.sequential).interactions
    if cfg.source.startswith("movielens/"):
        from tfrs_app.data.movielens import load_movielens

        return load_movielens(cfg.source.split("/", 1)[1], data_dir=cfg.data_dir, manual_dir=cfg.manual_dir)
    from tfrs_app.data.tabular import load_tabular

    return load_tabular(cfg.path, cfg.columns, cfg.items_path, fmt=cfg.source, delimiter=cfg.delimiter,
                        encoding=cfg.encoding, options=read_options(cfg), report=report, problems=problems)
