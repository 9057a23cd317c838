"""Ranker training stage: prepared data -> ranking examples -> MultiHeadRanker -> predictions.

Reads and writes the run directory (sharing ``data/`` and ``features.json`` with retrieval):

    <run_dir>/ranker/config.yaml              the resolved config of this stage
    <run_dir>/ranker/checkpoint/              weights (tf.train.Checkpoint), written atomically
    <run_dir>/ranker/metrics.json             per-head AUC, PR-AUC, log loss, ECE on val and test,
                                              next to an item-prior baseline; the delayed-feedback
                                              labels and weights used (``feedback``)
    <run_dir>/ranker/predictions/{val,test}.parquet
                                              per example and head: label, deterministic score,
                                              MC mean and std; what ``calibrate`` fits thresholds on
    <run_dir>/logs/ranker/                    TensorBoard scalars

Training resumes from its last finished epoch (``BackupAndRestore`` in ``ranker/backup``).
Validation and test examples use their own negative-sampling seeds, fixed per run, so every
stage and every rerun scores the same rows.
"""
from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import HEADS, Config, load_config
from tfrs_app.data.prepare import RunData, load_data, prepare_data
from tfrs_app.data.schema import LABEL_SOURCES, label_problem
from tfrs_app.distribute import make_strategy
from tfrs_app.evaluation.metrics import classification_metrics
from tfrs_app.feedback.weights import apply_feedback, resolve_cutoff
from tfrs_app.io import atomic_write_dir, atomic_write_json, atomic_write_parquet
from tfrs_app.ranking.examples import RankingExamples, dataset, position_buckets, ranking_examples
from tfrs_app.ranking.model import MultiHeadRanker, build_ranker
from tfrs_app.ranking.uncertainty import predict

log = logging.getLogger(__name__)
SPLIT_SEEDS = {"train": 11, "val": 12, "test": 13}  # added to cfg.seed for each split's negatives


@dataclass
class TrainedRanker:
    cfg: Config
    data: RunData
    model: MultiHeadRanker


def split_examples(cfg: Config, data: RunData, name: str, train: pd.DataFrame | None = None) -> RankingExamples:
    """The ranking examples of split ``name`` (histories from the splits before it); ``train``
    replaces the training split's rows as targets (delayed-feedback labels and weights)."""
    splits = data.splits
    target = {"train": splits.train if train is None else train, "val": splits.val, "test": splits.test}[name]
    context = {"train": splits.train.iloc[:0], "val": splits.train,
               "test": splits.known()}[name]
    r = cfg.ranker
    return ranking_examples(target, context, data.catalog, data.space, r.negatives_per_positive,
                            r.negative_sampling_power, cfg.seed + SPLIT_SEEDS[name], r.use_position)


def check_labels(train: RankingExamples, loss_weights: Mapping[str, float]) -> None:
    """Every head with a loss weight has labels of both classes in the training split, or
    ValueError naming the head and the columns that would feed it (a head trained on nothing
    would be exported and served anyway). ``ranker.loss_weights.<head>=0`` opts a head out."""
    for head in HEADS:
        if loss_weights.get(head, 1.0) == 0:
            continue
        what = label_problem(train.labels[head])
        if what:
            raise ValueError(f"ranker head {head!r}: {what} in the training split; the log needs {LABEL_SOURCES[head]} "
                             f"(or set ranker.loss_weights.{head}=0 to train without this head)")


def run(cfg: Config, callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> dict:
    """Trains, predicts on val/test (deterministic and MC), evaluates; returns the metrics dict."""
    strategy = make_strategy(cfg.strategy)  # first: multi-worker collectives must be set up before any op runs
    run_dir = Path(cfg.run_dir)
    stage = run_dir / "ranker"
    stage.mkdir(parents=True, exist_ok=True)
    if not (stage / "backup").exists():  # a fresh run (not a resume): results of an older model must not survive
        for stale in ("thresholds", "predictions", "plots"):
            shutil.rmtree(stage / stale, ignore_errors=True)
        for stale in ("report.json", "report.md", "metrics.json"):
            (stage / stale).unlink(missing_ok=True)
    cfg.save(stage / "config.yaml")
    tf.keras.utils.set_random_seed(cfg.seed)
    data = prepare_data(cfg)
    if len(data.splits.val) == 0:
        raise ValueError("data.val_fraction: the ranker fits its decision thresholds on validation data; "
                         "use val_fraction > 0")

    started = time.perf_counter()
    weighted = apply_feedback(data.splits.train, cfg.feedback, resolve_cutoff(cfg.feedback, data.splits))
    relabelled = (data.splits.train.assign(engagement=weighted.labels, weight_engagement=weighted.weights)
                  if weighted.summary["applied"] else None)  # without conversion times the log's labels stand
    train = split_examples(cfg, data, "train", relabelled)
    check_labels(train, cfg.ranker.loss_weights)
    log.info("ranker: %d training examples (%d logged, %d sampled impressions) in %.1fs", len(train),
             int(train.is_logged.sum()), int((~train.is_logged).sum()), time.perf_counter() - started)
    with strategy.scope():
        model = build_ranker(cfg.ranker, data.space, position_buckets(data.splits.train), cfg.seed)
        build(model, train)
    callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(stage / "backup")),
        tf.keras.callbacks.TensorBoard(str(run_dir / "logs" / "ranker"), update_freq="epoch"),
        *callbacks,
    ]
    started = time.perf_counter()
    history = model.fit(dataset(train, cfg.ranker.batch_size, cfg.seed), epochs=cfg.ranker.epochs,
                        callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.perf_counter() - started
    if weighted.summary["applied"] and cfg.feedback.recalibrate:
        weighted.summary["intercept_shift"] = recalibrate_intercept(model, train, "engagement")
    shutil.rmtree(stage / "backup", ignore_errors=True)
    save_weights(model, stage / "checkpoint")

    trained = TrainedRanker(cfg, data, model)
    metrics = {"train_seconds": train_seconds, "num_train_examples": len(train),
               "optimizer_steps": int(model.optimizer.iterations.numpy()),
               "strategy": cfg.strategy, "replicas": int(strategy.num_replicas_in_sync),
               "feedback": weighted.summary,
               "history": {k: [float(x) for x in v] for k, v in history.history.items()}}
    metrics.update(evaluate(trained, train))
    atomic_write_json(stage / "metrics.json", metrics)
    return metrics


def recalibrate_intercept(model: MultiHeadRanker, train: RankingExamples, head: str) -> float:
    """Shifts ``head``'s output bias by d so that the mean deterministic prediction over the
    training examples equals their weighted label mean: sum w sigmoid(z + d) = sum w y (Newton).

    Logistic regression's optimum has this property (calibration in the large); SGD with
    dropout does not keep it, and under delayed feedback the weighted label mean is exactly the
    positive rate the method estimated (the ranker under-predicted it by 6-9% after 12 epochs,
    oracle included). Uses training rows only. Returns d."""
    weight = train.weights[head] * ~np.isnan(train.labels[head])
    label = np.nan_to_num(train.labels[head])
    prob = np.clip(predict(model, train.model_features())[head]["score"].astype(np.float64), 1e-6, 1 - 1e-6)
    logit, target, shift = np.log(prob / (1 - prob)), float((weight * label).sum()), 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(logit + shift)))
        gap, slope = float((weight * p).sum()) - target, float((weight * p * (1 - p)).sum())
        if abs(gap) < 1e-6 * max(target, 1.0) or slope <= 0:
            break
        shift -= gap / slope
    model.heads[head].out.bias.assign_add(tf.constant([shift], model.heads[head].out.bias.dtype))
    return float(shift)


def evaluate(trained: TrainedRanker, train: RankingExamples) -> dict:
    """Predicts val and test (written to ranker/predictions/), and scores every head against the
    item-prior baseline (the item's smoothed mean label in the training examples)."""
    cfg = trained.cfg
    out: dict = {}
    for name in ("val", "test"):
        examples = split_examples(cfg, trained.data, name)
        frame = predictions_frame(trained.model, examples, cfg.ranker.mc_samples, cfg.seed)
        atomic_write_parquet(Path(cfg.run_dir) / "ranker" / "predictions" / f"{name}.parquet", frame)
        prior = item_prior(train, examples.features["item_id"])
        out[name] = {}
        for head in HEADS:
            known = ~np.isnan(frame[f"{head}_label"].to_numpy())
            if known.sum() == 0:
                continue
            label = frame[f"{head}_label"].to_numpy()[known]
            out[name][head] = {
                "model": classification_metrics(frame[f"{head}_det"].to_numpy()[known], label),
                "model_mc_mean": classification_metrics(frame[f"{head}_score"].to_numpy()[known], label),
                "item_prior": classification_metrics(prior[head][known], label),
            }
    return out


def predictions_frame(model: MultiHeadRanker, examples: RankingExamples, num_samples: int, seed: int) -> pd.DataFrame:
    """One row per example: ids, is_logged, and per head label / det / score (MC mean) / std."""
    features = examples.model_features()
    deterministic = predict(model, features)
    sampled = predict(model, features, num_samples=num_samples, seed=seed)
    frame = pd.DataFrame({"user_id": examples.features["user_id"], "item_id": examples.features["item_id"],
                          "is_logged": examples.is_logged})
    for head in HEADS:
        frame[f"{head}_label"] = examples.labels[head]
        frame[f"{head}_det"] = deterministic[head]["score"]
        frame[f"{head}_score"] = sampled[head]["score"]
        frame[f"{head}_std"] = sampled[head]["std"]
    return frame


def item_prior(train: RankingExamples, item_ids: np.ndarray, strength: float = 5.0) -> dict[str, np.ndarray]:
    """{head: [N]}: each item's training mean label, shrunk to the global mean by ``strength`` pseudo-counts."""
    out = {}
    for head in HEADS:
        label = train.labels[head]
        known = ~np.isnan(label)
        frame = pd.DataFrame({"item": train.features["item_id"][known], "y": label[known]})
        mean = float(frame["y"].mean()) if len(frame) else 0.5
        stats = frame.groupby("item")["y"].agg(["sum", "count"])
        smoothed = (stats["sum"] + strength * mean) / (stats["count"] + strength)
        out[head] = smoothed.reindex(item_ids).fillna(mean).to_numpy(np.float64)
    return out


def build(model: MultiHeadRanker, examples: RankingExamples) -> None:
    """Creates every variable by one forward pass (needed before restoring or resuming)."""
    sample = {k: tf.constant(v[:2]) for k, v in examples.inputs().items()}
    model(sample)
    if model.position_bias is not None:
        model.position_logit(tf.constant([0, 1], tf.int64))
    model.built = True


def _checkpoint(model: MultiHeadRanker) -> tf.train.Checkpoint:
    parts = {"query_encoder": model.query_encoder, "candidate_encoder": model.candidate_encoder, "trunk": model.trunk,
             **{f"head_{h}": model.heads[h] for h in model.head_names}}
    if model.position_bias is not None:
        parts["position_bias"] = model.position_bias
    return tf.train.Checkpoint(**parts)


def save_weights(model: MultiHeadRanker, directory: Path) -> None:
    """Writes the weights into ``directory`` atomically (temp dir, then rename)."""
    checkpoint = _checkpoint(model)
    atomic_write_dir(directory, lambda tmp: checkpoint.write(str(tmp / "ranker")))


def load_trained_ranker(run_dir: str | Path) -> TrainedRanker:
    """Rebuilds the trained ranker of a run directory from its config, data and checkpoint."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / "ranker" / "checkpoint" / "ranker"
    if not (run_dir / "ranker" / "config.yaml").exists() or not Path(str(checkpoint) + ".index").exists():
        raise FileNotFoundError(f"{run_dir}: no trained ranker here (run `tfrs-app train-ranker` first)")
    cfg = load_config(run_dir / "ranker" / "config.yaml")
    data = load_data(run_dir)
    model = build_ranker(cfg.ranker, data.space, position_buckets(data.splits.train), cfg.seed)
    build(model, ranking_examples(data.splits.train.iloc[:2], data.splits.train.iloc[:0], data.catalog, data.space,
                                  0, use_position=cfg.ranker.use_position))
    _checkpoint(model).read(str(checkpoint)).assert_existing_objects_matched()
    return TrainedRanker(cfg, data, model)
