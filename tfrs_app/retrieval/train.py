"""Retrieval training stage: data -> splits -> feature space -> two towers -> metrics.

Everything lands in the run directory, so later stages (index, export) and later sessions
can pick it up without the data source:

    <run_dir>/config.yaml                    the resolved config
    <run_dir>/data/{train,val,test}.parquet  the splits; items.parquet, the catalog
    <run_dir>/features.json                  vocabularies and stats (FeatureSpace)
    <run_dir>/retrieval/checkpoint/          tower weights (tf.train.Checkpoint)
    <run_dir>/retrieval/metrics.json         val/test metrics of the model and of popularity
    <run_dir>/logs/retrieval/                TensorBoard scalars

Training is resumable: an interrupted ``fit`` restarts from its last finished epoch
(``BackupAndRestore`` under ``<run_dir>/retrieval/backup``).
"""
from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import Config, load_config
from tfrs_app.data.prepare import load_data, prepare_data
from tfrs_app.distribute import make_strategy
from tfrs_app.data.splits import Splits
from tfrs_app.features.examples import as_strings, candidate_features, query_features, with_history
from tfrs_app.features.space import FeatureSpace
from tfrs_app.io import atomic_write_dir, atomic_write_json
from tfrs_app.retrieval.evaluate import build_eval_set, evaluate_model, evaluate_popularity
from tfrs_app.retrieval.model import RetrievalModel, build_model, embed

log = logging.getLogger(__name__)


@dataclass
class TrainedRetrieval:
    """A trained model with everything needed to use it: config, feature space, catalog, splits."""

    cfg: Config
    space: FeatureSpace
    model: RetrievalModel
    catalog: pd.DataFrame
    splits: Splits
    _embeddings: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def catalog_embeddings(self) -> np.ndarray:
        """[N, D] float32 candidate-tower embeddings of the catalog's rows, computed once per
        object: the index, both retrieval exports and both recommender exports share them."""
        if self._embeddings is None:
            self._embeddings = embed(self.model.candidate_tower, candidate_features(self.catalog))
        return self._embeddings

    def catalog_counts(self) -> np.ndarray:
        """Training count of each catalog row (0 for items never seen in training)."""
        counts = dict(zip(self.space.item_ids, self.space.item_counts))
        return np.array([counts.get(i, 0) for i in self.catalog["item_id"]], dtype=np.int64)


def run(cfg: Config, callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> dict:
    """Trains and evaluates; returns the metrics dict also written to retrieval/metrics.json.

    ``callbacks`` are added to Keras ``fit`` (early stopping, custom logging, ...). A run that
    was interrupted resumes from its last finished epoch when called again on the same run_dir.
    """
    strategy = make_strategy(cfg.strategy)  # first: multi-worker collectives must be set up before any op runs
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    tf.keras.utils.set_random_seed(cfg.seed)

    data = prepare_data(cfg)
    splits, catalog, space = data.splits, data.catalog, data.space

    with strategy.scope():
        model = build_model(cfg.retrieval, space, cfg.seed)
        build_towers(model, splits.train, space)
    dataset = training_dataset(splits.train, space, cfg.retrieval.batch_size, cfg.seed)
    callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(run_dir / "retrieval" / "backup")),
        tf.keras.callbacks.TensorBoard(str(run_dir / "logs" / "retrieval"), update_freq="epoch"),
        *callbacks,
    ]
    started = time.perf_counter()
    history = model.fit(dataset, epochs=cfg.retrieval.epochs, callbacks=callbacks,
                        verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.perf_counter() - started
    shutil.rmtree(run_dir / "retrieval" / "backup", ignore_errors=True)  # fit finished: nothing to resume
    save_towers(model, run_dir / "retrieval" / "checkpoint")

    trained = TrainedRetrieval(cfg, space, model, catalog, splits)
    metrics = {"train_seconds": train_seconds, "loss": [float(v) for v in history.history["loss"]],
               "optimizer_steps": int(model.optimizer.iterations.numpy()),
               "strategy": cfg.strategy, "replicas": int(strategy.num_replicas_in_sync),
               "splits": splits.sizes(), "num_items": len(catalog)}
    metrics.update(evaluate(trained))
    atomic_write_json(run_dir / "retrieval" / "metrics.json", metrics)
    return metrics


def evaluate(trained: TrainedRetrieval) -> dict:
    """Val (if any) and test metrics for the model and the popularity baseline."""
    cfg, splits = trained.cfg, trained.splits
    ks = cfg.retrieval.eval_ks
    out = {}
    held_out = [("test", pd.concat([splits.train, splits.val], ignore_index=True), splits.test)]
    if len(splits.val):
        held_out.insert(0, ("val", splits.train, splits.val))
    for name, known, target in held_out:
        eval_set = build_eval_set(known, target, trained.catalog, cfg.data.history_length, cfg.retrieval.exclude_seen)
        out[name] = {
            "model": evaluate_model(trained.model, trained.catalog, eval_set, ks),
            "popularity": evaluate_popularity(trained.catalog_counts(), eval_set, ks),
        }
    return out


def training_dataset(train: pd.DataFrame, space: FeatureSpace, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled batches of query inputs + candidate inputs + item_probability (for logQ)."""
    features = query_features(train, with_history(train, space.history_length))
    features.update(candidate_features(train))
    features["item_probability"] = space.item_probability(train["item_id"].to_numpy())
    data = tf.data.Dataset.from_tensor_slices(as_strings(features))
    return data.shuffle(len(train), seed=seed, reshuffle_each_iteration=True).batch(batch_size).prefetch(2)


def build_towers(model: RetrievalModel, events: pd.DataFrame, space: FeatureSpace) -> None:
    """Creates the towers' variables by calling them on one example (needed before restoring)."""
    sample = events.iloc[:1]
    model.query_tower({k: tf.constant(v) for k, v in as_strings(
        query_features(sample, with_history(sample, space.history_length))).items()})
    model.candidate_tower({k: tf.constant(v) for k, v in as_strings(candidate_features(sample)).items()})
    model.built = True  # all variables live in the towers; lets BackupAndRestore checkpoint from epoch 1


def save_towers(model: RetrievalModel, directory: Path) -> None:
    """Writes both towers' weights into ``directory`` atomically (temp dir, then rename)."""
    checkpoint = tf.train.Checkpoint(query_tower=model.query_tower, candidate_tower=model.candidate_tower)
    atomic_write_dir(directory, lambda tmp: checkpoint.write(str(tmp / "towers")))


def load_trained(run_dir: str | Path) -> TrainedRetrieval:
    """Rebuilds the trained model of a run directory (config, features, checkpoint, splits)."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / "retrieval" / "checkpoint" / "towers"
    if not (run_dir / "config.yaml").exists() or not Path(str(checkpoint) + ".index").exists():
        raise FileNotFoundError(f"{run_dir}: no trained retrieval model here (run `tfrs-app train-retrieval` first)")
    cfg = load_config(run_dir / "config.yaml")
    data = load_data(run_dir)
    model = build_model(cfg.retrieval, data.space, cfg.seed)
    build_towers(model, data.splits.train, data.space)
    tf.train.Checkpoint(query_tower=model.query_tower, candidate_tower=model.candidate_tower).read(
        str(checkpoint)).assert_existing_objects_matched()
    return TrainedRetrieval(cfg, data.space, model, data.catalog, data.splits)
