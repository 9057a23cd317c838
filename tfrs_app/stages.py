"""The stages after training, each reading and writing the run directory.

- ``build_index(run_dir)``: candidate embeddings of the whole catalog, a ScaNN index sized to
  it and the exact reference; ScaNN's recall@k against exact search on held-out queries
  (the test users' queries) -> ``<run_dir>/index/report.json``.
- ``export(run_dir)``: whatever the run has trained, as new versions under
  ``<export.base_dir>``: the two retrieval SavedModels (stock ops and ScaNN) and the ranker
  (with its thresholds in the graph); paths -> ``<run_dir>/exports.json``.
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
    """Exports every trained model of the run; returns {model: version path}.

    ``retrieval`` (stock ops) and ``retrieval_scann`` when retrieval was trained; ``ranker``
    when the ranker was trained and its thresholds calibrated.
    """
    run_dir = Path(run_dir)
    has_retrieval = trained is not None or (run_dir / "retrieval" / "checkpoint").exists()
    has_ranker = (run_dir / "ranker" / "thresholds").exists()
    if not has_retrieval and not has_ranker:
        raise FileNotFoundError(f"{run_dir}: nothing to export (train retrieval or the ranker first)")
    paths = export_retrieval(run_dir, trained, base_dir) if has_retrieval else {}
    if has_ranker:
        paths["ranker"] = export_ranker(run_dir, base_dir)
    previous = read_json(run_dir / "exports.json") if (run_dir / "exports.json").exists() else {}
    atomic_write_json(run_dir / "exports.json", {**previous, **paths})
    return paths


def export_retrieval(run_dir: Path, trained: Optional[TrainedRetrieval] = None, base_dir: Optional[str] = None) -> dict:
    """``retrieval`` (stock ops) and ``retrieval_scann``; returns {model: version path}."""
    trained = trained or load_trained(run_dir)
    cfg = trained.cfg
    base = Path(base_dir or cfg.export.base_dir)
    k = min(cfg.export.k, len(trained.catalog))
    embeddings, ids = candidate_embeddings(trained)
    params = index_params(run_dir, trained, len(ids), k)
    scann, brute = build_scann(embeddings, ids, k, params), build_brute_force(embeddings, ids, k)
    user_features = trained.model.query_tower.user_feature_names
    common = {"run_dir": str(run_dir.resolve()), "num_candidates": int(len(ids)), "user_features": list(user_features)}
    paths = {}
    for name, layer, is_scann in (("retrieval", brute, False), ("retrieval_scann", scann, True)):
        server = RetrievalServer(trained.model.query_tower, layer, user_features, k)
        meta = {**common, "model": name, "index": params.to_dict() if is_scann else "brute_force", "k": k,
                "outputs": ["item_ids", "scores"]}
        paths[name] = str(publish(base / name, lambda tmp: save_server(server, tmp, meta, is_scann)))
        log.info("exported %s -> %s", name, paths[name])
    return paths


def export_ranker(run_dir: Path, base_dir: Optional[str] = None) -> str:
    """``ranker``: serving_default and predict_with_uncertainty with the run's thresholds."""
    from tfrs_app.ranking.calibrate import load_tables
    from tfrs_app.ranking.train import load_trained_ranker
    from tfrs_app.serving.ranker import RankerServer

    trained = load_trained_ranker(run_dir)
    tables = load_tables(run_dir)
    r = trained.cfg.ranker
    user_features = trained.model.query_encoder.user_feature_names
    server = RankerServer(trained.model, tables, user_features, r.mc_samples, trained.cfg.seed)
    meta = {"run_dir": str(run_dir.resolve()), "model": "ranker", "user_features": list(user_features),
            "heads": list(trained.model.head_names), "mc_samples": r.mc_samples, "seed": trained.cfg.seed,
            "thresholds": {h: t.to_dict() for h, t in tables.items()},
            "signatures": {"serving_default": list(trained.model.head_names),
                           "predict_with_uncertainty": [f"{h}_{k}" for h in trained.model.head_names
                                                        for k in ("mean", "std", "bucket", "decision")]}}
    base = Path(base_dir or trained.cfg.export.base_dir)
    path = str(publish(base / "ranker", lambda tmp: save_server(server, tmp, meta)))
    log.info("exported ranker -> %s", path)
    return path
