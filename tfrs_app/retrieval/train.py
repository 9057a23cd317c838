"""Retrieval training stage: data -> splits -> feature space -> two towers -> metrics.

Everything lands in the run directory, so later stages (index, export) and later sessions
can pick it up without the data source:

    <run_dir>/config.yaml                    the resolved config
    <run_dir>/data/{train,val,test}.parquet  the splits; items.parquet, the catalog
    <run_dir>/features.json                  vocabularies and stats (FeatureSpace), train split
    <run_dir>/retrieval/features.json        the feature space the saved towers were built on:
                                             train + validation after a refit, else the above
    <run_dir>/retrieval/checkpoint/          tower weights (tf.train.Checkpoint)
    <run_dir>/retrieval/metrics.json         val/test metrics of the model and of each baseline
    <run_dir>/logs/retrieval/                TensorBoard scalars

Training is resumable: an interrupted ``fit`` restarts from its last finished epoch
(``BackupAndRestore`` under ``<run_dir>/retrieval/backup``). With a validation split,
``retrieval.epochs`` is the most epochs: after each one the validation split's
``early_stopping_metric`` is measured, training stops after ``early_stopping_patience`` epochs
without a gain, and the best epoch's weights are the ones saved (``early_stopping.py``).
"""
from __future__ import annotations

import json
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

from tfrs_app.config import Config, load_config, replace
from tfrs_app.data.prepare import load_data, prepare_data
from tfrs_app.distribute import make_strategy
from tfrs_app.data.splits import Splits
from tfrs_app.features.examples import as_strings, candidate_features, query_features, with_history
from tfrs_app.features.space import FeatureSpace
from tfrs_app.io import atomic_write_dir, atomic_write_json
from tfrs_app.retrieval.early_stopping import BestEpoch
from tfrs_app.retrieval.compare import evaluate_baselines
from tfrs_app.retrieval.evaluate import build_eval_set, evaluate_model, ranking_metrics, top_k
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

    def catalog_item_vectors(self) -> np.ndarray:
        """[N, D'] the catalog embeddings without the item-bias column, if the towers have one:
        the item's own vector, for item-to-item similarity (MMR); scoring keeps the bias."""
        embeddings = self.catalog_embeddings()
        return embeddings[:, :-1] if self.model.candidate_tower.with_bias else embeddings

    def catalog_counts(self) -> np.ndarray:
        """Training count of each catalog row (0 for items never seen in training)."""
        counts = dict(zip(self.space.item_ids, self.space.item_counts))
        return np.array([counts.get(i, 0) for i in self.catalog["item_id"]], dtype=np.int64)


def run(cfg: Config, callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> dict:
    """Trains and evaluates; returns the metrics dict also written to retrieval/metrics.json.

    Two phases when there is a validation split and early stopping is on:

    1. fit on train, measuring validation after each epoch; the best epoch's weights are kept
       and the validation metrics (of the towers and of the baselines' chosen settings) are
       taken from them;
    2. with ``retrieval.refit_on_validation``, a fresh model is fitted on train + validation
       for that many epochs (the baselines likewise refit on train + validation), and that is
       the model tested, indexed and exported: the weeks just before test are the most
       informative ones, and a deployed model is trained up to its last labelled day.

    ``callbacks`` are added to phase 1's Keras ``fit``. A run that was interrupted resumes from
    its last finished epoch when called again on the same run_dir (either phase).
    """
    strategy = make_strategy(cfg.strategy)  # first: multi-worker collectives must be set up before any op runs
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    tf.keras.utils.set_random_seed(cfg.seed)

    data = prepare_data(cfg)
    splits, catalog, space = data.splits, data.catalog, data.space
    model, history, train_seconds, best = fit(cfg, strategy, splits.train, space, catalog, splits, "", callbacks)
    metrics = {"train_seconds": train_seconds, "loss": [float(v) for v in history["loss"]],
               "optimizer_steps": int(model.optimizer.iterations.numpy()),
               "strategy": cfg.strategy, "replicas": int(strategy.num_replicas_in_sync),
               "splits": splits.sizes(), "num_items": len(catalog),
               "early_stopping": best.summary() if best else None, "refit": None}
    validated = TrainedRetrieval(cfg, space, model, catalog, splits)
    final = validated
    if best and cfg.retrieval.refit_on_validation:
        known = splits.known()
        epochs = int(best.best_epoch)
        # The refit's own vocabularies and stats: users and items first seen in validation get
        # ids, and the time features reach validation's last day (test follows it).
        refit_space = FeatureSpace.fit(known, catalog, cfg.data.history_length, cfg.retrieval.time_buckets)
        tf.keras.utils.set_random_seed(cfg.seed)
        refit, refit_history, refit_seconds, _ = fit(replace(cfg, **{"retrieval.epochs": epochs}), strategy,
                                                     known, refit_space, catalog, None, "_refit",
                                                     schedule_epochs=cfg.retrieval.epochs)
        final = TrainedRetrieval(cfg, refit_space, refit, catalog, splits)
        metrics["refit"] = {"epochs": epochs, "train_seconds": refit_seconds,
                            "loss": [float(v) for v in refit_history["loss"]],
                            "optimizer_steps": int(refit.optimizer.iterations.numpy()), "events": len(known),
                            "users": len(refit_space.user_ids), "items": len(refit_space.item_ids)}
        metrics["train_seconds"] += refit_seconds
    final.space.save(run_dir / "retrieval" / "features.json")  # before the checkpoint: load_trained pairs them
    save_towers(final.model, run_dir / "retrieval" / "checkpoint")
    metrics.update(evaluate(validated, final))
    atomic_write_json(run_dir / "retrieval" / "metrics.json", metrics)
    if best:  # only now: a crash in evaluation resumes without retraining
        shutil.rmtree(best.directory, ignore_errors=True)
    return metrics


def fit(cfg: Config, strategy, events: pd.DataFrame, space: FeatureSpace, catalog: pd.DataFrame,
        splits: Optional[Splits], phase: str, callbacks: Sequence[tf.keras.callbacks.Callback] = (),
        schedule_epochs: Optional[int] = None):
    """One Keras fit of fresh towers on ``events``: (model, history dict, seconds, BestEpoch or
    None). ``splits`` given: early stopping on its validation split. ``phase`` names the backup
    and TensorBoard folders (``retrieval/backup<phase>``, ``logs/retrieval<phase>``).
    ``schedule_epochs``: the learning-rate schedule's horizon (default: ``retrieval.epochs``), so
    a refit for the best epoch count follows the validated run's rates, not a faster decay."""
    run_dir = Path(cfg.run_dir)
    steps_per_epoch = -(-len(events) // cfg.retrieval.batch_size)
    horizon = (schedule_epochs or cfg.retrieval.epochs) * steps_per_epoch
    with strategy.scope():
        model = build_model(cfg.retrieval, space, cfg.seed, catalog, horizon)
        build_towers(model, events, space)
    best = early_stopping(cfg, model, splits, catalog) if splits is not None else None
    if best is not None and best.finished:  # phase 1 ended before an interruption: its best weights stand
        best.restore()
        return model, {"loss": best.losses}, 0.0, best
    dataset = training_dataset(events, space, cfg.retrieval.batch_size, cfg.seed, cfg.retrieval.recency_half_life_days)
    backup = run_dir / "retrieval" / f"backup{phase}"
    callbacks = [
        *([best] if best else []),  # first: measured before the backup, and before TensorBoard logs it
        tf.keras.callbacks.BackupAndRestore(str(backup)),
        tf.keras.callbacks.TensorBoard(str(run_dir / "logs" / f"retrieval{phase}"), update_freq="epoch"),
        *callbacks,
    ]
    started = time.perf_counter()
    history = model.fit(dataset, epochs=cfg.retrieval.epochs, callbacks=callbacks,
                        verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.perf_counter() - started
    shutil.rmtree(backup, ignore_errors=True)  # fit finished: nothing to resume
    return model, history.history, seconds, best


def evaluate(trained: TrainedRetrieval, final: Optional[TrainedRetrieval] = None) -> dict:
    """Val (if any) and test metrics: ``model`` (the towers) and each of ``retrieval.baselines``,
    the baselines tuned on validation only (``compare.py``). Validation is measured on
    ``trained`` (fitted on train); test on ``final`` (default ``trained``), which may be the
    train + validation refit, and then the baselines are refit on train + validation too."""
    final = final or trained
    cfg, splits = trained.cfg, trained.splits
    ks = cfg.retrieval.eval_ks
    sets = {"test": build_eval_set(splits.known(), splits.test,
                                   trained.catalog, cfg.data.history_length, cfg.retrieval.exclude_seen)}
    if len(splits.val):
        sets["val"] = build_eval_set(splits.train, splits.val, trained.catalog, cfg.data.history_length,
                                     cfg.retrieval.exclude_seen)
    baselines = evaluate_baselines(cfg.retrieval.baselines, splits, trained.catalog, sets.get("val"), sets["test"],
                                   ks, cfg.retrieval.early_stopping_metric, refit=final is not trained)
    out = {}
    for name, model in (("val", trained.model), ("test", final.model)):
        if name in sets:
            out[name] = {"model": evaluate_model(model, trained.catalog, sets[name], ks)}
            out[name].update({b: result[name] for b, result in baselines.items()})
    out["baselines"] = {b: {k: v for k, v in result.items() if k not in ("val", "test")}
                        for b, result in baselines.items()}
    return out


def early_stopping(cfg: Config, model: RetrievalModel, splits: Splits, catalog: pd.DataFrame) -> Optional[BestEpoch]:
    """The early-stopping callback over the validation split (None without one, or when off).

    It ranks the whole catalog for each validation user (train history only, seen excluded as
    in ``evaluate``) with the per-user metric only: no per-event pass, so an epoch's check costs
    one catalog embedding and one [U, N] product.
    """
    r = cfg.retrieval
    if not r.early_stopping_patience or not len(splits.val):
        return None
    eval_set = build_eval_set(splits.train, splits.val, catalog, cfg.data.history_length, r.exclude_seen)
    if not any(eval_set.relevant):
        return None
    ks = [int(r.early_stopping_metric.partition("@")[2])]

    def validate() -> dict:
        items = embed(model.candidate_tower, candidate_features(catalog))
        users = embed(model.query_tower, eval_set.user_queries)
        ranked = top_k(lambda a, b: users[a:b] @ items.T, len(users), ks[0], eval_set.seen)
        return ranking_metrics(ranked, eval_set.relevant, ks)

    checkpoint = tf.train.Checkpoint(query_tower=model.query_tower, candidate_tower=model.candidate_tower)
    settings = cfg.to_dict()
    fingerprint = json.dumps({"retrieval": settings["retrieval"], "data": settings["data"], "seed": cfg.seed},
                             sort_keys=True)
    return BestEpoch(validate, r.early_stopping_metric, r.early_stopping_patience,
                     Path(cfg.run_dir) / "retrieval" / "best", checkpoint, fingerprint)


def training_dataset(train: pd.DataFrame, space: FeatureSpace, batch_size: int, seed: int,
                     recency_half_life_days: float = 0.0) -> tf.data.Dataset:
    """Shuffled batches of query inputs + candidate inputs + item_probability (for logQ), and
    sample_weight [B] with a recency half-life."""
    features = query_features(train, with_history(train, space.history_length))
    features.update(candidate_features(train))
    features["item_probability"] = space.item_probability(train["item_id"].to_numpy())
    if recency_half_life_days > 0:
        features["sample_weight"] = recency_weights(train["timestamp"].to_numpy(), recency_half_life_days)
    data = tf.data.Dataset.from_tensor_slices(as_strings(features))
    return data.shuffle(len(train), seed=seed, reshuffle_each_iteration=True).batch(batch_size).prefetch(2)


def recency_weights(timestamps: np.ndarray, half_life_days: float) -> np.ndarray:
    """[N] float32 weights 0.5 ** (days before the newest timestamp / half_life_days), mean 1
    (so the loss scale, hence the learning rate, means the same as unweighted)."""
    age_days = (timestamps.max() - timestamps.astype(np.float64)) / 86400.0
    weights = np.exp2(-age_days / half_life_days)
    return (weights / weights.mean()).astype(np.float32)


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
    """Rebuilds the trained model of a run directory (config, its feature space, checkpoint, splits)."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / "retrieval" / "checkpoint" / "towers"
    space_path = run_dir / "retrieval" / "features.json"
    if not (run_dir / "config.yaml").exists() or not Path(str(checkpoint) + ".index").exists():
        raise FileNotFoundError(f"{run_dir}: no trained retrieval model here (run `tfrs-app train-retrieval` first)")
    if not space_path.exists():
        raise FileNotFoundError(f"{run_dir}: {space_path} is missing (a model trained before it was written); "
                                "train again with `tfrs-app train-retrieval`")
    cfg = load_config(run_dir / "config.yaml")
    data = load_data(run_dir)
    space = FeatureSpace.load(space_path)
    model = build_model(cfg.retrieval, space, cfg.seed)
    build_towers(model, data.splits.train, space)
    tf.train.Checkpoint(query_tower=model.query_tower, candidate_tower=model.candidate_tower).read(
        str(checkpoint)).assert_existing_objects_matched()
    return TrainedRetrieval(cfg, space, model, data.catalog, data.splits)
