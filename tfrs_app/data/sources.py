"""``load_interactions(DataConfig)``: the one place a data config becomes an interaction log."""
from __future__ import annotations

import dataclasses

from tfrs_app.config import DataConfig
from tfrs_app.data.schema import Interactions


def load_interactions(cfg: DataConfig) -> Interactions:
    if cfg.source == "synthetic":
        from tfrs_app.data.synthetic import generate

        return generate(**dataclasses.asdict(cfg.synthetic)).interactions
    if cfg.source == "synthetic_delayed":
        from tfrs_app.feedback.synthetic import generate_delayed

        return generate_delayed(cfg.delayed).interactions
    if cfg.source.startswith("movielens/"):
        from tfrs_app.data.movielens import load_movielens

        return load_movielens(cfg.source.split("/", 1)[1], data_dir=cfg.data_dir, manual_dir=cfg.manual_dir)
    from tfrs_app.data.tabular import load_tabular

    return load_tabular(cfg.path, cfg.columns, cfg.items_path, fmt=cfg.source)
