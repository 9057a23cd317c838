"""The graph stage: build the item graph, train the dual-embedding GNN, measure it against the
baselines, and write what serving needs.

    <run_dir>/graph/config.yaml        the resolved config of this stage
    <run_dir>/graph/graph.npz          the item graph of the known events (train + validation)
    <run_dir>/graph/checkpoint/        the GNN's weights; vocabulary.json, its id/title/genre vocabularies
    <run_dir>/graph/embeddings.npz     item_ids [N], source [N, D], target [N, D] over that graph
    <run_dir>/graph/watchnext.parquet  WatchNext values per catalog item (graph/watchnext.py)
    <run_dir>/graph/report.json        graph sizes, training curve, test metrics of every model

The folder is written whole to a temp folder and swapped in (``io.atomic_write_dir``), so a
failed or killed run leaves the previous model, config and tables together.

Protocol (time split of the run's data): the model trains on the edges of the training events
and stops early on validation HitRate@k (pairs whose target event is in validation, best
epoch's weights restored); test pairs are those whose target event is in test, scored with the
graph of the known events (train + validation), as a deployed model would be. Baselines in the
same report: directed co-occurrence over the known events, and the retrieval candidate tower's
cosine neighbours when the run has a trained retrieval model.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import Config, GraphConfig, load_config
from tfrs_app.data.prepare import RunData, load_data, prepare_data
from tfrs_app.graph.baselines import CooccurrenceScorer, EmbeddingScorer
from tfrs_app.graph.edges import ItemGraph, build_graph, held_out_pairs
from tfrs_app.graph.evaluate import evaluate_scorer, one_way_pairs, rank_metrics, target_ranks
from tfrs_app.graph.model import DualGraphModel
from tfrs_app.graph.sampling import NeighbourSampler
from tfrs_app.graph.watchnext import save_watchnext, watchnext_values
from tfrs_app.io import atomic_write_bytes, atomic_write_dir, atomic_write_json, read_json

log = logging.getLogger(__name__)
MAX_VALIDATION_PAIRS = 5000


@dataclass
class TrainedGraph:
    """A trained graph model with its catalog (rows = graph rows) and final embedding tables."""

    cfg: Config
    model: DualGraphModel
    graph: ItemGraph
    catalog: pd.DataFrame
    source: np.ndarray  # [N, D], L2-normalised
    target: np.ndarray  # [N, D]

    def scorer(self) -> EmbeddingScorer:
        return EmbeddingScorer(self.source, self.target, normalise=False)

    def popularity(self) -> np.ndarray:
        """[N] how often each item follows another (in-weight of the known graph): the list an
        input with nothing known about it gets."""
        return np.bincount(self.graph.dst, weights=self.graph.weight, minlength=self.graph.num_items)


def graph_of(events: pd.DataFrame, catalog: pd.DataFrame, g: GraphConfig) -> ItemGraph:
    return build_graph(events, catalog, g.window_days, g.min_count, g.max_next, g.coview_minutes, g.content_top_k)


def build_model(cfg: Config, data: RunData, dual: Optional[bool] = None,
                id_vocabulary: Optional[Sequence[str]] = None, title_vocabulary: Optional[Sequence[str]] = None,
                genre_vocabulary: Optional[Sequence[str]] = None) -> DualGraphModel:
    """The GNN over ``data``'s catalog, typed arguments from ``cfg.graph`` (``dual`` overrides).
    Ids get embeddings only for ``id_vocabulary`` (default: the feature space's, the training
    split's items); any other item is the OOV row, so an item the training events never show
    is embedded from its metadata alone instead of from an untrained random vector. Title and
    genre vocabularies default to the feature space's."""
    g, catalog, space = cfg.graph, data.catalog, data.space
    return DualGraphModel(catalog["item_id"].astype(str).to_numpy(), catalog["item_title"].astype(str).to_numpy(),
                          catalog["item_genres"].astype(str).to_numpy(),
                          space.title_tokens if title_vocabulary is None else title_vocabulary,
                          space.genres if genre_vocabulary is None else genre_vocabulary,
                          g.max_neighbours, g.embedding_dim, g.hidden_layers, g.hops, g.dual if dual is None else dual,
                          g.temperature, g.asymmetry_weight, g.num_negatives, g.id_dropout, cfg.seed,
                          id_vocabulary=space.item_ids if id_vocabulary is None else id_vocabulary,
                          use_logq=g.use_logq, cold_dropout=g.cold_dropout)


def fit(model: DualGraphModel, graph: ItemGraph, g: GraphConfig, seed: int,
        validation: Optional[pd.DataFrame] = None) -> dict:
    """Trains on ``graph``'s directed edges (drawn with probability proportional to their weight,
    as LINE does); with ``validation`` pairs, early stopping on HitRate@k, best weights restored.
    Returns {"epochs": [...], "best_epoch", "seconds"}."""
    if len(graph.src) == 0:
        raise ValueError(f"graph: the training events give no directed edges (window_days={g.window_days}, "
                         f"min_count={g.min_count}); lower graph.min_count or widen graph.window_days")
    rng = np.random.default_rng(seed)
    sampler = NeighbourSampler(graph, g.min_neighbours, g.max_neighbours)
    fixed = sampler.sample(None) if validation is not None else None  # validation's sample: the same every epoch
    one_way = graph.direction_evidence()
    probability = graph.weight / graph.weight.sum()
    model.set_target_prior(np.bincount(graph.dst, weights=probability, minlength=graph.num_items))
    draws = max(len(graph.src), 8 * g.batch_size)
    optimizer = tf.keras.optimizers.Adam(g.learning_rate)

    @tf.function
    def step(src, dst, flags):
        with tf.GradientTape() as tape:
            loss = model.edge_loss(src, dst, flags)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    if validation is not None and len(validation) > MAX_VALIDATION_PAIRS:
        validation = validation.sample(MAX_VALIDATION_PAIRS, random_state=seed)
    epochs, best, best_weights, started = [], None, None, time.perf_counter()
    for epoch in range(1, g.epochs + 1):
        model.set_neighbours(sampler.sample(rng))
        chosen = rng.choice(len(graph.src), size=draws, p=probability)
        losses = [float(step(tf.constant(graph.src[b], tf.int32), tf.constant(graph.dst[b], tf.int32),
                             tf.constant(one_way[b])))
                  for b in np.array_split(chosen, int(np.ceil(draws / g.batch_size)))]
        record = {"epoch": epoch, "loss": float(np.mean(losses))}
        if validation is not None and len(validation):
            model.set_neighbours(fixed)
            source, target = (t.numpy() for t in model.embed())
            ranks = target_ranks(EmbeddingScorer(source, target, normalise=False), validation["source"].to_numpy(),
                                 validation["target"].to_numpy())
            record.update({f"val_{k}": v for k, v in rank_metrics(ranks, g.k).items() if k != "pairs"})
            score = record[f"val_hit_rate@{g.k}"]
            if best is None or score > best[1]:
                best, best_weights = (epoch, score), model.get_weights()
            elif epoch - best[0] >= g.early_stopping_patience > 0:
                epochs.append(record)
                log.info("graph epoch %d: %s (stopping: best epoch %d)", epoch, _fmt(record), best[0])
                break
        epochs.append(record)
        log.info("graph epoch %d: %s", epoch, _fmt(record))
    if best_weights is not None:
        model.set_weights(best_weights)
    return {"epochs": epochs, "best_epoch": best[0] if best else len(epochs),
            "seconds": time.perf_counter() - started}


def _fmt(record: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch")


def final_embeddings(model: DualGraphModel, graph: ItemGraph, g: GraphConfig) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) [N, D] over ``graph`` with its deterministic neighbour sample (heaviest first)."""
    model.set_neighbours(NeighbourSampler(graph, g.min_neighbours, g.max_neighbours).sample(None))
    source, target = model.embed()
    return source.numpy(), target.numpy()


def run(cfg: Config, symmetric_baseline: bool = False) -> dict:
    """Builds the graphs, trains, evaluates, writes ``<run_dir>/graph/``; returns the report.
    ``symmetric_baseline`` also trains the single-embedding GNN and reports it on the same pairs."""
    run_dir = Path(cfg.run_dir)
    out = run_dir / "graph"
    tf.keras.utils.set_random_seed(cfg.seed)
    data = prepare_data(cfg)
    models, report = train_and_evaluate(cfg, data, symmetric_baseline, candidate_vectors(run_dir, data.catalog))

    def write(tmp: Path) -> None:  # the whole folder is swapped in at once: never an old model with a new config
        save_trained(models["dual"], tmp)
        atomic_write_json(tmp / "report.json", report)
        cfg.save(tmp / "config.yaml")

    atomic_write_dir(out, write)
    return report


def train_and_evaluate(cfg: Config, data: RunData, symmetric_baseline: bool = False,
                       candidate: Optional[np.ndarray] = None) -> tuple[dict[str, TrainedGraph], dict]:
    """Trains on ``data``'s training events (early stopping on its validation pairs), embeds
    over the known events' graph, and measures every model on the test pairs. The model's id
    vocabulary is the items of ``data.splits.train`` (so a benchmark can hold items out).
    Returns ({"dual": the configured model, "symmetric": the baseline if asked}, report)."""
    g, splits, catalog = cfg.graph, data.splits, data.catalog
    train_graph = graph_of(splits.train, catalog, g)
    validation = held_out_pairs(splits.train, splits.val, train_graph.item_ids, g.window_days, g.max_next) \
        if len(splits.val) else None
    vocabulary = sorted(set(splits.train["item_id"].astype(str)))
    models = {"dual": g.dual, **({"symmetric": False} if symmetric_baseline and g.dual else {})}
    known = splits.known()
    graph = graph_of(known, catalog, g)
    fitted = {}
    for name, dual in models.items():
        tf.keras.utils.set_random_seed(cfg.seed)
        model = build_model(cfg, data, dual, vocabulary)
        training = fit(model, train_graph, g, cfg.seed, validation)
        fitted[name] = (TrainedGraph(cfg, model, graph, catalog, *final_embeddings(model, graph, g)), training)
    trained, training = fitted["dual"]
    extra = {"symmetric_gnn": fitted["symmetric"][0].scorer()} if "symmetric" in fitted else None
    report = {"graph": {"train": train_graph.describe(), "known": graph.describe()}, "training": training,
              "model": "dual_gnn" if g.dual else "symmetric_gnn",
              "test": evaluate_models(trained, known, splits.test, candidate, extra)}
    if "symmetric" in fitted:
        report["symmetric_training"] = fitted["symmetric"][1]
    return {name: model for name, (model, _) in fitted.items()}, report


def evaluate_models(trained: TrainedGraph, known: pd.DataFrame, test: pd.DataFrame,
                    candidate: Optional[np.ndarray] = None, extra: Optional[dict] = None) -> dict:
    """Test metrics of the trained model and the baselines on the pairs whose target is in ``test``.
    ``extra``: more {name: scorer} to measure on the same pairs (the benchmark's symmetric model)."""
    g, graph = trained.cfg.graph, trained.graph
    pairs = held_out_pairs(known, test, graph.item_ids, g.window_days, g.max_next)
    one_way = one_way_pairs(pairs, graph.src, graph.dst, graph.num_items)
    cold = np.flatnonzero(graph.occurrences == 0)  # items the known events never show: metadata only
    if g.k >= graph.num_items - 1:
        log.warning("graph.k=%d: the catalog has %d items, so every model lists every other item and scores "
                    "HitRate@%d 1.0; the metrics say nothing here", g.k, graph.num_items, g.k)
    scorers = {"dual_gnn" if trained.model.dual else "symmetric_gnn": trained.scorer(), **(extra or {}),
               "cooccurrence": CooccurrenceScorer(known, graph.item_ids, g.window_days, g.max_next)}
    if candidate is not None:
        scorers["candidate_tower"] = EmbeddingScorer(candidate)
    results = {}
    for name, scorer in scorers.items():
        started = time.perf_counter()
        results[name] = {**evaluate_scorer(scorer, pairs, one_way, g.k, cold), "seconds": time.perf_counter() - started}
        log.info("graph test %s: hit_rate@%d %.4f, mrr@%d %.4f, forward wins %.3f", name, g.k,
                 results[name][f"hit_rate@{g.k}"], g.k, results[name][f"mrr@{g.k}"],
                 results[name]["asymmetry"]["forward_wins"])
    return {"pairs": int(len(pairs)), "one_way_pairs": int(len(one_way)), "cold_items": int(len(cold)),
            "models": results}


def candidate_vectors(run_dir: Path, catalog: pd.DataFrame) -> Optional[np.ndarray]:
    """[N, D] retrieval candidate-tower vectors in ``catalog`` order, when the run trained retrieval."""
    if not (Path(run_dir) / "retrieval" / "checkpoint").exists():
        return None
    from tfrs_app.retrieval.train import load_trained

    trained = load_trained(run_dir)
    rows = pd.Index(trained.catalog["item_id"].astype(str)).get_indexer(catalog["item_id"].astype(str))
    return trained.catalog_item_vectors()[rows]


def save_trained(trained: TrainedGraph, out: Path) -> None:
    """The graph, weights, vocabularies (the model is rebuilt from these, never from the data
    as it is later), embedding tables and WatchNext values into ``out``."""
    import io

    trained.graph.save(out / "graph.npz")
    tf.train.Checkpoint(model=trained.model).write(str(out / "checkpoint" / "graph"))
    atomic_write_json(out / "vocabulary.json", {k: list(v) for k, v in trained.model.vocabularies.items()})
    buffer = io.BytesIO()
    np.savez(buffer, item_ids=trained.graph.item_ids.astype(str), source=trained.source, target=trained.target)
    atomic_write_bytes(out / "embeddings.npz", buffer.getvalue())
    save_watchnext(watchnext_values(trained.graph), out)


def load_trained_graph(run_dir: str | Path) -> TrainedGraph:
    """The trained graph model of a run (FileNotFoundError naming the stage when there is none)."""
    out = Path(run_dir) / "graph"
    checkpoint = out / "checkpoint" / "graph"
    needed = [Path(str(checkpoint) + ".index"), out / "embeddings.npz", out / "vocabulary.json", out / "config.yaml"]
    if not all(path.exists() for path in needed):
        raise FileNotFoundError(f"{run_dir}: no trained graph model here (run `tfrs-app train-graph` first)")
    cfg = load_config(out / "config.yaml")
    data = load_data(run_dir)
    vocabularies = read_json(out / "vocabulary.json")
    model = build_model(cfg, data, id_vocabulary=vocabularies["ids"], title_vocabulary=vocabularies["titles"],
                        genre_vocabulary=vocabularies["genres"])
    graph = ItemGraph.load(out / "graph.npz")
    if list(graph.item_ids) != list(data.catalog["item_id"].astype(str)):
        raise ValueError(f"{out / 'graph.npz'}: its items differ from the run's catalog; train the graph again")
    model.encode({name: tensor[:1] for name, tensor in model.item_features.items()})  # creates the variables
    model.embed()
    tf.train.Checkpoint(model=model).read(str(checkpoint)).assert_existing_objects_matched()
    with np.load(out / "embeddings.npz", allow_pickle=False) as tables:
        if list(tables["item_ids"]) != list(data.catalog["item_id"].astype(str)):
            raise ValueError(f"{out / 'embeddings.npz'}: its items differ from the run's catalog; train the graph again")
        source, target = tables["source"], tables["target"]
    return TrainedGraph(cfg, model, graph, data.catalog, source, target)


def format_graph_report(report: dict) -> str:
    """The report as a table: one row per model on the test pairs."""
    test, graph = report["test"], report["graph"]["known"]
    k = next(key for key in next(iter(test["models"].values())) if key.startswith("hit_rate@")).split("@")[1]
    lines = [f"item graph (train + validation events): {graph['items']} items, {graph['directed_edges']} directed edges "
             f"({graph['one_way_share']:.0%} one-way), {graph['similarity_edges']} similarity edges, "
             f"{graph['items_without_edges']} items without edges",
             f"training: best epoch {report['training']['best_epoch']} of {len(report['training']['epochs'])}, "
             f"{report['training']['seconds']:.1f}s",
             f"test: {test['pairs']} later pairs, {test['one_way_pairs']} one-way, {test['cold_items']} cold items",
             f"{'model':16s} {'HitRate@' + k:>10s} {'MRR@' + k:>8s} {'forward wins':>13s} {'cold HitRate':>13s}"]
    for name, m in test["models"].items():
        cold = m.get("cold_targets", {})
        cold = f"{cold[f'hit_rate@{k}']:.4f}" if cold.get("pairs") else "-"
        lines.append(f"{name:16s} {m[f'hit_rate@{k}']:10.4f} {m[f'mrr@{k}']:8.4f} "
                     f"{m['asymmetry']['forward_wins']:13.3f} {cold:>13s}")
    return "\n".join(lines)
