"""The stages after training, each reading and writing the run directory.

- ``build_index(run_dir)``: candidate embeddings of the whole catalog, a ScaNN index sized to
  it and the exact reference; ScaNN's recall@k against exact search on held-out queries
  (the test users' queries) -> ``<run_dir>/index/report.json``.
- ``export(run_dir)``: whatever the run has trained, as one new version under
  ``<export.base_dir>``: the two retrieval SavedModels (stock ops and ScaNN), the ranker (with
  its thresholds in the graph), the two recommenders, the two related-items models (the
  graph stage's, ``serving/related.py``) and the two session recommenders (the sessions
  stage's GRU4Rec, ``serving/sessions.py``); paths -> ``<run_dir>/exports.json``.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401

from tfrs_app.config import IndexConfig
from tfrs_app.io import atomic_write_json, read_json
from tfrs_app.retrieval.evaluate import build_eval_set
from tfrs_app.retrieval.index import (ScannParams, build_brute_force, build_scann, measure_index, scann_params,
                                      tune_scann)
from tfrs_app.retrieval.model import embed
from tfrs_app.retrieval.train import TrainedRetrieval, load_trained
from tfrs_app.serving.export import RetrievalServer, publish_all, save_server

log = logging.getLogger(__name__)

Write = Callable[[Path], None]  # fills a version folder (export.publish_all)
SCANN_MIN_ITEMS = 16  # ScaNN's asymmetric hashing trains 16 centres per block: fewer items cannot build it


def candidate_embeddings(trained: TrainedRetrieval) -> tuple[np.ndarray, np.ndarray]:
    """([N, D] float32 embeddings, [N] item ids) of the whole catalog (embedded once per model)."""
    return trained.catalog_embeddings(), trained.catalog["item_id"].to_numpy().astype(str)


def held_out_queries(trained: TrainedRetrieval, limit: int) -> np.ndarray:
    """Query embeddings of the test users (as of the end of train+val), at most ``limit``."""
    splits = trained.splits
    known = splits.known()
    eval_set = build_eval_set(known, splits.test, trained.catalog, trained.cfg.data.history_length)
    queries = embed(trained.model.query_tower, eval_set.user_queries)
    return queries[:limit]


@dataclass(frozen=True)
class HeldOutUsers:
    """Test users as a request would see them at their first test event: the full seen list
    (train + val, most recent first), user features, and the items they go on to meet in test."""

    user_ids: list
    timestamps: list
    histories: list
    features: dict  # {user_<f>: [value per user]}
    test_items: list  # [set of item ids per user]


def held_out_users(trained: TrainedRetrieval, limit: int, user_features: Optional[Sequence[str]] = None) -> HeldOutUsers:
    """The first ``limit`` test users the model knows (in its user vocabulary). ``user_features``:
    the user_<f> columns to carry (default: the query tower's)."""
    splits = trained.splits
    known = splits.known()
    firsts = splits.test.drop_duplicates("user_id")
    firsts = firsts[firsts["user_id"].isin(trained.space.user_ids)].head(limit)
    seen = known.groupby("user_id")["item_id"].apply(lambda items: list(items)[::-1])
    later = splits.test.groupby("user_id")["item_id"].apply(set)
    names = trained.model.query_tower.user_feature_names if user_features is None else user_features
    return HeldOutUsers(list(firsts["user_id"]), [int(t) for t in firsts["timestamp"]],
                        [seen.get(u, []) for u in firsts["user_id"]], {name: list(firsts[name]) for name in names},
                        [later.get(u, set()) for u in firsts["user_id"]])


def example_queries(trained: TrainedRetrieval, num_users: int = 2,
                    user_features: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
    """Signature inputs (numpy) for the first known test users: the exports' warmup requests."""
    from tfrs_app.serving.load import query_request

    users = held_out_users(trained, num_users, user_features)
    histories = [h[: trained.cfg.data.history_length] for h in users.histories]
    request = query_request(users.user_ids, users.timestamps, histories, users.features)
    return {name: tensor.numpy() for name, tensor in request.items()}


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
    """Exports every trained model of the run as one new version; returns {model: version path}.

    ``retrieval`` (stock ops) and ``retrieval_scann`` when retrieval was trained; ``ranker`` (and,
    with retrieval, ``recommender`` and ``recommender_scann``) when the ranker was trained, which
    must then be calibrated; ``related_items`` and ``related_items_scann`` when the graph stage
    was trained (``<run_dir>/graph/checkpoint``; a run with only a graph exports those two);
    ``session_recommender`` and ``session_recommender_scann`` when the sessions stage was
    trained (``<run_dir>/sessions/checkpoint``; a run with only sessions exports those two).
    The ScaNN variants of related items and sessions need ``SCANN_MIN_ITEMS`` items.
    Every model is loaded and its server built before anything is written, so a missing piece
    fails the export naming what is missing instead of after part of it was published;
    ``publish_all`` then writes them all under one version number.
    """
    run_dir = Path(run_dir)
    has_retrieval = trained is not None or (run_dir / "retrieval" / "checkpoint").exists()
    has_ranker = (run_dir / "ranker" / "checkpoint" / "ranker.index").exists()
    has_graph = (run_dir / "graph" / "checkpoint").exists()
    has_sessions = (run_dir / "sessions" / "checkpoint").exists()
    if (run_dir / "ranker" / "config.yaml").exists() and not has_ranker:  # its training was refused or killed
        log.warning("%s: the ranker's training did not finish (no checkpoint); exporting without it", run_dir)
    if not has_retrieval and not has_ranker and not has_graph and not has_sessions:
        raise FileNotFoundError(f"{run_dir}: nothing to export (train retrieval, the ranker or the graph first, "
                                f"or the session model: `tfrs-app train-sessions`)")
    ranker = None
    if has_ranker:
        from tfrs_app.ranking.train import load_trained_ranker

        ranker = load_trained_ranker(run_dir)
        if not (run_dir / "ranker" / "thresholds").is_dir():
            raise FileNotFoundError(f"{run_dir}: the ranker is trained but not calibrated: run "
                                    f"`tfrs-app calibrate-thresholds --run-dir {run_dir}` first")
    if has_retrieval and trained is None:
        trained = load_trained(run_dir)
    graph = None
    if has_graph:
        from tfrs_app.graph.train import load_trained_graph

        graph = load_trained_graph(run_dir)
    sessions = None
    if has_sessions:
        from tfrs_app.sequences.train import load_trained_sessions

        sessions = load_trained_sessions(run_dir)
    base_dir = base_dir or next(t for t in (trained, ranker, graph, sessions) if t is not None).cfg.export.base_dir
    writes = _retrieval_writes(run_dir, trained) if trained is not None else {}
    if ranker is not None:
        writes["ranker"] = _ranker_write(run_dir, ranker)
        if trained is not None:
            writes.update(_recommender_writes(run_dir, trained, ranker))
    if graph is not None:
        writes.update(_related_writes(run_dir, graph))
    if sessions is not None:
        writes.update(_session_writes(run_dir, sessions))
    paths = _publish(base_dir, writes)
    log.info("TF Serving config: %s", Path(base_dir) / "models.config")
    previous = read_json(run_dir / "exports.json") if (run_dir / "exports.json").exists() else {}
    atomic_write_json(run_dir / "exports.json", {**previous, **paths})
    return paths


def _publish(base_dir: str | Path, writes: dict[str, Write]) -> dict[str, str]:
    """publish_all, logged; {model: version path as str}."""
    paths = {name: str(path) for name, path in publish_all(base_dir, writes).items()}
    for name, path in paths.items():
        log.info("exported %s -> %s", name, path)
    return paths


def _retrieval_writes(run_dir: Path, trained: TrainedRetrieval) -> dict[str, Write]:
    """{model: write(tmp)} of the two retrieval servers, built here; nothing is written yet."""
    cfg = trained.cfg
    k = min(cfg.export.k, len(trained.catalog))
    embeddings, ids = candidate_embeddings(trained)
    params = index_params(run_dir, trained, len(ids), k)
    scann, brute = build_scann(embeddings, ids, k, params), build_brute_force(embeddings, ids, k)
    user_features = trained.model.query_tower.user_feature_names
    common = {"run_dir": str(run_dir.resolve()), "num_candidates": int(len(ids)), "user_features": list(user_features)}
    warmup = example_queries(trained)
    writes = {}
    for name, layer, is_scann in (("retrieval", brute, False), ("retrieval_scann", scann, True)):
        server = RetrievalServer(trained.model.query_tower, layer, user_features, k)
        meta = {**common, "model": name, "index": params.to_dict() if is_scann else "brute_force", "k": k,
                "outputs": ["item_ids", "scores"]}
        writes[name] = functools.partial(save_server, server, metadata=meta, scann=is_scann, warmup=warmup)
    return writes


def related_server(trained_graph, scann: bool = False):
    """The RelatedItemsServer of a trained graph (``graph.train.TrainedGraph``), k = ``graph.k``:
    exact scoring, or ScaNN over the target table (identifiers = catalog rows). The ScaNN
    probe count is tuned like the retrieval index's (``index.target_recall`` unless
    ``index.num_leaves_to_search`` is set), on the catalog items' own source rows as queries
    (a one-item basket's query). Returns (server, ScaNN params dict or "brute_force", trials)."""
    from tfrs_app.serving.related import RelatedItemsServer

    if not scann:
        return RelatedItemsServer.from_trained(trained_graph), "brute_force", []
    cfg, target = trained_graph.cfg.index, trained_graph.target
    k = min(trained_graph.cfg.graph.k, len(target))
    rows = np.arange(len(target), dtype=np.int64)
    params = _derived_params(cfg, len(rows), k)
    rng = np.random.default_rng(trained_graph.cfg.seed)
    queries = trained_graph.source[rng.permutation(len(rows))[: cfg.max_eval_queries]]
    goal = cfg.target_recall if cfg.num_leaves_to_search is None else 0.0  # explicit values win
    index, _, params, trials = tune_scann(target, rows, queries, k, params, k, goal)
    return RelatedItemsServer.from_trained(trained_graph, index=index), params.to_dict(), trials


def related_examples(trained_graph) -> dict[str, np.ndarray]:
    """Warmup inputs: one known item (the most-followed) and a 2-item basket (the next two)."""
    from tfrs_app.serving.related import related_request

    ids = trained_graph.catalog["item_id"].astype(str).to_numpy()
    top = list(ids[np.argsort(-trained_graph.popularity(), kind="stable")[:3]])
    request = related_request([top[:1], top[1:3] or top[:1]])
    return {name: tensor.numpy().astype(str) for name, tensor in request.items()}


def _related_writes(run_dir: Path, trained_graph) -> dict[str, Write]:
    """{model: write(tmp)} of the two related-items servers, built here; nothing is written yet."""
    from tfrs_app.serving.related import OUTPUTS

    warmup = related_examples(trained_graph)
    writes = {}
    variants = [("related_items", False), ("related_items_scann", True)]
    if len(trained_graph.target) < SCANN_MIN_ITEMS:
        log.warning("related_items_scann: skipped, the catalog has %d items (ScaNN's quantiser needs %d); the exact "
                    "related_items answers alone", len(trained_graph.target), SCANN_MIN_ITEMS)
        variants = variants[:1]
    for name, is_scann in variants:
        server, index, trials = related_server(trained_graph, scann=is_scann)
        meta = {"run_dir": str(run_dir.resolve()), "model": name, "k": server.k,
                "num_candidates": server.num_candidates, "index": index, "outputs": list(OUTPUTS),
                "graph_model": "dual_gnn" if trained_graph.model.dual else "symmetric_gnn"}
        if trials:
            meta["tuning"] = trials
        writes[name] = functools.partial(save_server, server, metadata=meta, scann=is_scann, warmup=warmup)
    return writes


def session_server(trained_sessions, scann: bool = False):
    """The SessionRecommenderServer of a trained session model (``sequences.train.TrainedSessions``),
    k = ``sessions.k``: exact scoring, or ScaNN over [W_y, b_y] (identifiers = score columns).
    The ScaNN probe count is tuned like the retrieval index's (``index.target_recall`` unless
    ``index.num_leaves_to_search`` is set), on one-item sessions as queries (the GRU's output
    after each of up to ``index.max_eval_queries`` items). Returns (server, ScaNN params dict
    or "brute_force", trials)."""
    import tensorflow as tf

    from tfrs_app.serving.sessions import SessionRecommenderServer, scann_queries, scann_table

    if not scann:
        return SessionRecommenderServer.from_trained(trained_sessions), "brute_force", []
    cfg, model = trained_sessions.cfg, trained_sessions.model
    table = scann_table(model)
    k = min(cfg.sessions.k, len(table))
    rows = np.arange(len(table), dtype=np.int64)
    params = _derived_params(cfg.index, len(rows), k)
    rng = np.random.default_rng(cfg.seed)
    firsts = rng.permutation(len(rows))[: cfg.index.max_eval_queries] + 1  # model rows of one-item sessions
    output = model.encode(tf.constant(firsts[:, None]), tf.ones([len(firsts)], tf.int32))
    queries = scann_queries(output).numpy()
    goal = cfg.index.target_recall if cfg.index.num_leaves_to_search is None else 0.0  # explicit values win
    index, _, params, trials = tune_scann(table, rows, queries, k, params, k, goal)
    return SessionRecommenderServer.from_trained(trained_sessions, index=index), params.to_dict(), trials


def session_examples(trained_sessions) -> dict[str, np.ndarray]:
    """Warmup inputs: a one-item session (the most popular item) and a two-item one (the next two)."""
    from tfrs_app.serving.sessions import session_request

    vocabulary = trained_sessions.vocabulary
    top = list(vocabulary.item_ids[np.argsort(-vocabulary.counts, kind="stable")[:3]].astype(str))
    request = session_request([top[:1], top[1:3] or top[:1]])
    return {name: tensor.numpy().astype(str) for name, tensor in request.items()}


def _session_writes(run_dir: Path, trained_sessions) -> dict[str, Write]:
    """{model: write(tmp)} of the two session recommenders, built here; nothing is written yet.
    Titles come from the run's catalog (``<run_dir>/data/items.parquet``)."""
    from tfrs_app.data.prepare import load_data
    from tfrs_app.serving.sessions import EXCLUDE_BUDGET, OUTPUTS, save_session_server

    vocabulary = trained_sessions.vocabulary
    catalog = load_data(run_dir).catalog
    titles = catalog.set_index(catalog["item_id"].astype(str))["item_title"].astype(str)
    titles = titles.reindex(vocabulary.item_ids.astype(str)).fillna("").to_numpy()
    warmup = session_examples(trained_sessions)
    writes = {}
    variants = [("session_recommender", False), ("session_recommender_scann", True)]
    if len(vocabulary) < SCANN_MIN_ITEMS:
        log.warning("session_recommender_scann: skipped, the model has %d items (ScaNN's quantiser needs %d); the "
                    "exact session_recommender answers alone", len(vocabulary), SCANN_MIN_ITEMS)
        variants = variants[:1]
    for name, is_scann in variants:
        server, index, trials = session_server(trained_sessions, scann=is_scann)
        meta = {"run_dir": str(run_dir.resolve()), "model": name, "k": server.k,
                "num_candidates": server.num_candidates, "index": index, "outputs": list(OUTPUTS),
                "session_model": "gru4rec", "gru4rec": trained_sessions.model.get_config()}
        if is_scann:
            meta["exclude_budget"] = EXCLUDE_BUDGET
        if trials:
            meta["tuning"] = trials
        writes[name] = functools.partial(save_session_server, server, metadata=meta, titles=titles, scann=is_scann,
                                         warmup=warmup)
    return writes


def export_ranker(run_dir: str | Path, base_dir: Optional[str] = None, trained=None) -> str:
    """``ranker``: serving_default and predict_with_uncertainty with the run's thresholds."""
    from tfrs_app.ranking.train import load_trained_ranker

    run_dir = Path(run_dir)
    trained = trained or load_trained_ranker(run_dir)
    return _publish(base_dir or trained.cfg.export.base_dir, {"ranker": _ranker_write(run_dir, trained)})["ranker"]


def _ranker_write(run_dir: Path, trained) -> Write:
    """write(tmp) of the ranker server with the run's thresholds (FileNotFoundError naming a
    missing table), built here; nothing is written yet."""
    from tfrs_app.ranking.calibrate import load_tables
    from tfrs_app.ranking.examples import ranking_examples
    from tfrs_app.serving.ranker import RankerServer

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
    example = ranking_examples(trained.data.splits.test.head(2), trained.data.splits.train, trained.data.catalog,
                               trained.data.space, per_positive=1, seed=0).model_features()
    warmup = {k: (v.astype(str) if v.dtype.kind in "SO" else v) for k, v in example.items()}
    return functools.partial(save_server, server, metadata=meta, warmup=warmup)


def recommender_server(run_dir: str | Path, trained: Optional[TrainedRetrieval] = None, scann: bool = False,
                       ranker=None):
    """The RecommenderServer of a run (retrieval + calibrated ranker), exact or ScaNN retrieval.

    The ScaNN variant's probe count is tuned until recall@R against exact search on held-out
    queries reaches ``index.target_recall`` (R = num_candidates + exclude_budget). With
    ``recommender.watchnext_weight`` > 0 the blend reads the run's WatchNext values
    (``<run_dir>/graph/watchnext.parquet``; FileNotFoundError naming ``tfrs-app train-graph``
    when there are none); at 0 nothing is read.
    """
    from tfrs_app.graph.watchnext import load_watchnext
    from tfrs_app.ranking.calibrate import load_tables
    from tfrs_app.ranking.train import load_trained_ranker
    from tfrs_app.serving.recommender import Blend, Catalog, RecommenderServer

    run_dir = Path(run_dir)
    trained = trained or load_trained(run_dir)
    ranker = ranker or load_trained_ranker(run_dir)
    cfg, rec = trained.cfg, trained.cfg.recommender
    embeddings, ids = candidate_embeddings(trained)
    watchnext = load_watchnext(run_dir, ids) if rec.watchnext_weight > 0 else None  # before the index work
    retrieve = min(rec.num_candidates + rec.exclude_budget, len(ids))
    rows = np.arange(len(ids), dtype=np.int64)
    if scann:  # tuned for recall@R, the depth the recommender reads, not the index stage's recall@10
        params = _derived_params(cfg.index, len(ids), retrieve)
        if params.num_reordering_candidates < retrieve:
            raise ValueError(f"index.num_reordering_candidates: the ScaNN recommender reads the top {retrieve} "
                             f"(recommender.num_candidates + exclude_budget); reorder at least that many, "
                             f"got {params.num_reordering_candidates}")
        target = cfg.index.target_recall if cfg.index.num_leaves_to_search is None else 0.0  # explicit values win
        queries = held_out_queries(trained, cfg.index.max_eval_queries)
        index, _, params, _ = tune_scann(embeddings, rows, queries, retrieve, params, retrieve, target)
    else:
        index = build_brute_force(embeddings, rows, retrieve)
    catalog = Catalog(ids=ids, titles=trained.catalog["item_title"].to_numpy(), genres=trained.catalog["item_genres"].to_numpy(),
                      embeddings=trained.catalog_item_vectors(), counts=trained.catalog_counts(), watchnext=watchnext)
    blend = Blend(rec.engagement_weight, rec.satisfaction_weight, rec.std_penalty, rec.mmr_lambda,
                  rec.cold_popularity_weight, rec.watchnext_weight)
    return RecommenderServer(trained.model.query_tower, index, ranker.model, load_tables(run_dir), catalog,
                             trained.model.query_tower.user_feature_names,
                             ranker.model.query_encoder.user_feature_names, cfg.data.history_length,
                             rec.num_candidates, rec.exclude_budget, rec.top_n, ranker.cfg.ranker.mc_samples,
                             ranker.cfg.seed, blend)


def export_recommender(run_dir: str | Path, trained: Optional[TrainedRetrieval] = None,
                       base_dir: Optional[str] = None, ranker=None) -> dict:
    """``recommender`` (exact retrieval, stock ops) and ``recommender_scann`` as one new version;
    {model: version path}."""
    from tfrs_app.ranking.train import load_trained_ranker

    run_dir = Path(run_dir)
    trained = trained or load_trained(run_dir)
    ranker = ranker or load_trained_ranker(run_dir)
    return _publish(base_dir or trained.cfg.export.base_dir, _recommender_writes(run_dir, trained, ranker))


def _recommender_writes(run_dir: Path, trained: TrainedRetrieval, ranker) -> dict[str, Write]:
    """{model: write(tmp)} of the two recommender servers, built here; nothing is written yet."""
    writes = {}
    for name, is_scann in (("recommender", False), ("recommender_scann", True)):
        server = recommender_server(run_dir, trained, scann=is_scann, ranker=ranker)
        features = [n for n in server.input_specs if n.startswith("user_") and n != "user_id"]
        warmup = example_queries(trained, user_features=features)
        meta = {"run_dir": str(run_dir.resolve()), "model": name, "index": "scann" if is_scann else "brute_force",
                "num_candidates": server.num_candidates, "retrieved": server.retrieve, "top_n": server.top_n,
                "mc_samples": server.mc_samples, "blend": dataclasses.asdict(server.blend),
                "user_features": features}
        writes[name] = functools.partial(save_server, server, metadata=meta, scann=is_scann, warmup=warmup)
    return writes
