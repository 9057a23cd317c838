"""The stages after training, each reading and writing the run directory.

- ``build_index(run_dir)``: candidate embeddings of the whole catalog, a ScaNN index sized to
  it and the exact reference; ScaNN's recall@k against exact search on held-out queries
  (the test users' queries) -> ``<run_dir>/index/report.json``.
- ``export(run_dir)``: the two retrieval SavedModels (stock ops and ScaNN) as new versions
  under ``<export.base_dir>``; paths and versions -> ``<run_dir>/exports.json``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401

from tfrs_app.config import IndexConfig
from tfrs_app.features.examples import candidate_features
from tfrs_app.io import atomic_write_json, read_json
from tfrs_app.retrieval.evaluate import build_eval_set
from tfrs_app.retrieval.index import (ScannParams, build_brute_force, build_scann, measure_index, scann_params,
                                      tune_scann)
from tfrs_app.retrieval.model import embed
from tfrs_app.retrieval.train import TrainedRetrieval, load_trained
from tfrs_app.serving.export import RetrievalServer, publish, save_server

log = logging.getLogger(__name__)


def candidate_embeddings(trained: TrainedRetrieval) -> tuple[np.ndarray, np.ndarray]:
    """([N, D] float32 embeddings, [N] item ids) of the whole catalog."""
    return embed(trained.model.candidate_tower, candidate_features(trained.catalog)), \
        trained.catalog["item_id"].to_numpy().astype(str)


def held_out_queries(trained: TrainedRetrieval, limit: int) -> np.ndarray:
    """Query embeddings of the test users (as of the end of train+val), at most ``limit``."""
    splits = trained.splits
    known = pd.concat([splits.train, splits.val], ignore_index=True)
    eval_set = build_eval_set(known, splits.test, trained.catalog, trained.cfg.data.history_length)
    queries = embed(trained.model.query_tower, eval_set.user_queries)
    return queries[:limit]


def build_index(run_dir: str | Path, trained: Optional[TrainedRetrieval] = None) -> dict:
    """Builds, tunes and measures the index of a trained run; writes and returns the report.

    With ``index.num_leaves_to_search`` unset, the probe count is tuned to reach
    ``index.target_recall``; the export stage reuses the resulting parameters.
    """
    trained = trained or load_trained(run_dir)
    cfg = trained.cfg.index
    embeddings, ids = candidate_embeddings(trained)
    params = _derived_params(cfg, len(ids), cfg.k)
    queries = held_out_queries(trained, cfg.max_eval_queries)
    recall_k = min(cfg.recall_k, len(ids))
    target = cfg.target_recall if cfg.num_leaves_to_search is None else 0.0
    scann, brute, params, trials = tune_scann(embeddings, ids, queries, cfg.k, params, recall_k, target)
    report = {
        "num_candidates": int(len(ids)),
        "dimensions": int(embeddings.shape[1]),
        "params": params.to_dict(),
        "target_recall": target,
        "tuning": trials,
        "scann_build_seconds": trials[-1]["build_seconds"],
        **measure_index(scann, brute, queries, recall_k),
    }
    atomic_write_json(Path(run_dir) / "index" / "report.json", report)
    log.info("index: %d candidates, params %s, recall@%d %.3f on %d held-out queries", len(ids),
             params.to_dict(), recall_k, report[f"recall@{recall_k}"], report["num_queries"])
    return report


def index_params(run_dir: str | Path, trained: TrainedRetrieval, num_candidates: int, k: int) -> ScannParams:
    """The tuned parameters of the index stage if it ran, else the derived ones."""
    report = Path(run_dir) / "index" / "report.json"
    if report.exists():
        return ScannParams(**read_json(report)["params"])
    return _derived_params(trained.cfg.index, num_candidates, k)


def _derived_params(cfg: IndexConfig, num_candidates: int, k: int) -> ScannParams:
    """ScaNN parameters from the catalog size, with the config's explicit values winning."""
    return scann_params(num_candidates, k, cfg.num_leaves, cfg.num_leaves_to_search, cfg.num_reordering_candidates,
                        cfg.dimensions_per_block)


def export(run_dir: str | Path, trained: Optional[TrainedRetrieval] = None, base_dir: Optional[str] = None) -> dict:
    """Exports ``retrieval`` (stock ops) and ``retrieval_scann``; returns {model: version path}."""
    trained = trained or load_trained(run_dir)
    cfg = trained.cfg
    base = Path(base_dir or cfg.export.base_dir)
    k = min(cfg.export.k, len(trained.catalog))
    embeddings, ids = candidate_embeddings(trained)
    params = index_params(run_dir, trained, len(ids), k)
    scann, brute = build_scann(embeddings, ids, k, params), build_brute_force(embeddings, ids, k)
    user_features = trained.model.query_tower.user_feature_names
    common = {"run_dir": str(Path(run_dir).resolve()), "num_candidates": int(len(ids)),
              "user_features": list(user_features)}
    paths = {}
    for name, layer, is_scann in (("retrieval", brute, False), ("retrieval_scann", scann, True)):
        server = RetrievalServer(trained.model.query_tower, layer, user_features, k)
        meta = {**common, "model": name, "index": params.to_dict() if is_scann else "brute_force"}
        paths[name] = str(publish(base / name, lambda tmp: save_server(server, tmp, meta, is_scann)))
        log.info("exported %s -> %s", name, paths[name])
    atomic_write_json(Path(run_dir) / "exports.json", paths)
    return paths
