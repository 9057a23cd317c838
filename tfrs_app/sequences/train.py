"""The sessions stage: GRU4Rec trained on session-parallel mini-batches, measured against the
session baselines, written for serving.

    <run_dir>/sessions/config.yaml       the resolved config of this stage
    <run_dir>/sessions/checkpoint/       GRU4Rec's weights
    <run_dir>/sessions/vocabulary.json   the item ids of model rows 1..N (row 0: unknown), their
                                         training counts (the fallback list), the model's arguments
    <run_dir>/sessions/report.json       sessions, training curve, events/s, test metrics

The folder is written whole and swapped in (``io.atomic_write_dir``).

Protocols (``data.split``):
- ``session`` / ``time`` / ``random``: every next event of each validation / test session is a
  case (prefix -> next item), Recall@k and MRR@k over the whole catalog, the prefix's items
  excluded (``sequences/evaluate.py``). Sequences are the data's sessions.
- ``leave_last_out``: one case per user, the user's whole known sequence -> the held-out item,
  HitRate@10, nDCG@10, MRR, seen items excluded (the retrieval benchmark's protocol).
  ``sessions.sequence`` = ``user`` trains on each user's whole history as one sequence.
Early stopping on the validation metric, best epoch's weights restored; test is read once.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import Config, SessionsConfig, load_config
from tfrs_app.data.prepare import RunData, prepare_data
from tfrs_app.data.sessions import assign_sessions, session_sequences, session_stats
from tfrs_app.io import atomic_write_dir, atomic_write_json, read_json
from tfrs_app.sequences.baselines import SessionKNN, SessionPopularity
from tfrs_app.sequences.batching import build_schedule, iterate_chunks
from tfrs_app.sequences.evaluate import evaluate_last_item, evaluate_next_item, next_item_cases
from tfrs_app.sequences.losses import session_loss
from tfrs_app.sequences.model import GRU4Rec, pad_sequences
from tfrs_app.sequences.optimizers import AdagradMomentum

log = logging.getLogger(__name__)
CHUNK_STEPS = 64  # session-parallel steps per tf.function call (amortises the Python dispatch)
MAX_EVAL_CASES = 20000  # validation cases per epoch (sampled under the seed beyond this)
LLO_K = 10


@dataclass(frozen=True)
class Sequences:
    """Ordered sequences of item rows: sequence s is items[offsets[s]:offsets[s+1]], oldest first."""

    offsets: np.ndarray  # int64 [S + 1]
    items: np.ndarray  # int64 [offsets[-1]]
    users: np.ndarray  # object [S], each sequence's user

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s]:self.offsets[s + 1]]

    def mapped(self, rows: np.ndarray) -> "Sequences":
        """The same sequences with every item r replaced by rows[r], items mapped below 0 dropped."""
        new = rows[self.items]
        keep = new >= 0
        owner = np.repeat(np.arange(len(self)), np.diff(self.offsets))
        lengths = np.bincount(owner[keep], minlength=len(self))
        return Sequences(np.r_[0, np.cumsum(lengths)].astype(np.int64), new[keep].astype(np.int64), self.users)


def sequences_of(frame: pd.DataFrame, catalog_ids: pd.Index, unit: str, gap_minutes: float, seed: int) -> Sequences:
    """The frame's sessions (``unit`` session) or users' whole histories (``user``) in time order,
    items as rows of ``catalog_ids`` (every id of a prepared split is in its catalog)."""
    if unit == "user":
        frame = assign_sessions(frame.drop(columns=["session_id", "session_position"], errors="ignore")
                                .assign(session_id=frame["user_id"].astype(str)), gap_minutes, seed)
    elif "session_position" not in frame.columns:
        frame = assign_sessions(frame, gap_minutes, seed)
    rows = catalog_ids.get_indexer(frame["item_id"].astype(str))
    if (rows < 0).any():
        raise ValueError(f"item_id {frame['item_id'].iloc[int(np.flatnonzero(rows < 0)[0])]!r} is not in the catalog")
    offsets, items, ids = session_sequences(frame, rows)
    user_of = frame.drop_duplicates("session_id").set_index("session_id")["user_id"]
    return Sequences(offsets, items, user_of.reindex(ids).to_numpy(dtype=object))


class Vocabulary:
    """The model's items: model row r (1..N) is ``item_ids[r - 1]``; row 0 is the unknown item.

    Only items seen in training get rows (an item seen only as a session's first event is trained
    as an input and a negative, never as a target). ``counts`` [N]: training events per item
    (the list for a session of unknown items)."""

    def __init__(self, item_ids: Sequence[str], counts: np.ndarray):
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.counts = np.asarray(counts, dtype=np.float64)
        self.index = pd.Index(self.item_ids.astype(str))

    @classmethod
    def from_training(cls, train: Sequences, catalog_ids: pd.Index) -> "Vocabulary":
        counts = np.bincount(train.items, minlength=len(catalog_ids))
        present = np.flatnonzero(counts)
        return cls(catalog_ids[present].to_numpy(dtype=object), counts[present])

    def model_rows(self, catalog_ids: pd.Index) -> np.ndarray:
        """[N_catalog] the model row of each catalog item, -1 where the model has none."""
        rows = self.index.get_indexer(catalog_ids)
        return np.where(rows >= 0, rows + 1, -1)

    def __len__(self) -> int:
        return len(self.item_ids)


def build_model(s: SessionsConfig, num_items: int, seed: int) -> GRU4Rec:
    return GRU4Rec(num_items, s.hidden_sizes, s.embedding_dim, s.constrained_embedding, s.dropout_embedding,
                   s.dropout_hidden, s.activation, seed)


def _optimizer(s: SessionsConfig, variables):
    if s.optimizer == "adam":  # Adam's first moment is the momentum
        optimizer = tf.keras.optimizers.Adam(s.learning_rate, beta_1=s.momentum or 0.9)
        optimizer.build(variables)
        return lambda pairs: optimizer.apply_gradients(pairs)
    optimizer = AdagradMomentum(s.learning_rate, s.momentum)
    optimizer.build(variables)
    return optimizer.apply


def sampling_distribution(counts: np.ndarray, alpha: float) -> np.ndarray:
    """[N + 1] probabilities of drawing model row r as a shared negative: count ** alpha
    (GRU4Rec's ``sample_alpha``); row 0 (unknown) never."""
    weights = np.r_[0.0, np.asarray(counts, np.float64) ** alpha]
    weights[1:][counts == 0] = 0.0
    return weights / weights.sum()


def fit(model: GRU4Rec, train: Sequences, s: SessionsConfig, seed: int,
        validate: Optional[Callable[[], dict]] = None, metric: Optional[str] = None) -> dict:
    """Trains ``model`` on ``train`` (items as model rows 1..N); with ``validate`` (returning
    metrics) early stopping on ``metric``, best epoch's weights restored.
    Returns {"epochs", "best_epoch", "seconds", "events_per_second"}."""
    offsets, items = train.offsets, train.items
    counts = np.bincount(items, minlength=model.num_items + 1)[1:].astype(np.float64)
    probability = sampling_distribution(counts, s.negative_alpha)
    cumulative = np.cumsum(probability)
    log_count = tf.constant(np.log(np.maximum(np.r_[1.0, counts], 1.0)).astype(np.float32))
    variables = model.trainable_variables
    apply = _optimizer(s, variables)
    num_samples = s.num_sampled_negatives

    @tf.function(reduce_retracing=True)
    def chunk(inputs, targets, reset, active, negatives, states, seed_pair):
        total = tf.constant(0.0)
        for t in tf.range(tf.shape(inputs)[0]):
            states = [tf.where(reset[t][:, None], tf.zeros_like(h), h) for h in states]
            live = active[t]
            with tf.GradientTape() as tape:
                output, new_states = model.step(inputs[t], states, training=True, seed=seed_pair + tf.stack([t, 0]))
                candidates = tf.concat([targets[t], negatives[t]], axis=0)  # [B + S]: in-batch, then shared samples
                scores = model.score(output, candidates)
                column_live = tf.concat([live, tf.ones([num_samples], tf.bool)], axis=0)
                # accidental hits (a column holding the row's own target, the diagonal included) are not negatives
                mask = (candidates[None, :] != targets[t][:, None]) & column_live[None, :] & live[:, None]
                logq = None
                if s.logq > 0 and s.loss == "cross-entropy":  # each column by the probability it was drawn with
                    # (the port's P0[Y] for in-batch targets, P0[S] ** sample_alpha for the shared samples)
                    drawn = tf.gather(log_count, candidates) * tf.concat(
                        [tf.ones_like(targets[t], tf.float32), tf.fill([num_samples], float(s.negative_alpha))], 0)
                    logq = s.logq * drawn
                rows = session_loss(s.loss, scores, mask, bpreg=s.bpreg, logq=logq)
                weight = tf.cast(live, tf.float32)
                loss = tf.reduce_sum(rows * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)
            apply(list(zip(tape.gradient(loss, variables), variables)))
            states = [tf.stop_gradient(h) for h in new_states]  # GRU4Rec: no backpropagation through time
            total += loss
        return states, total

    rng = np.random.default_rng(seed)
    epochs, best, best_weights, started, events = [], None, None, time.perf_counter(), 0
    for epoch in range(1, s.epochs + 1):
        began = time.perf_counter()
        schedule = build_schedule(offsets, items, s.batch_size, rng)
        states = model.zero_states(s.batch_size)
        total, steps = 0.0, 0
        for part in iterate_chunks(schedule, CHUNK_STEPS):
            n = part.inputs.shape[0]
            negatives = np.searchsorted(cumulative, rng.random((n, num_samples)), side="right").astype(np.int64)
            states, loss = chunk(tf.constant(part.inputs), tf.constant(part.targets), tf.constant(part.reset),
                                 tf.constant(part.active), tf.constant(np.minimum(negatives, model.num_items)),
                                 states, tf.constant([seed, epoch * 1_000_003 + steps], tf.int32))
            total += float(loss)
            steps += n
        seconds = time.perf_counter() - began
        events += schedule.num_events
        record = {"epoch": epoch, "loss": total / max(steps, 1), "seconds": seconds,
                  "events_per_second": schedule.num_events / seconds}
        if validate is not None:
            record.update({f"val_{k}": v for k, v in validate().items() if isinstance(v, float)})
            score = record[f"val_{metric}"]
            if best is None or score > best[1]:
                best, best_weights = (epoch, score), [v.numpy() for v in variables]
            elif epoch - best[0] >= s.early_stopping_patience > 0:
                epochs.append(record)
                log.info("sessions epoch %d: %s (stopping: best epoch %d)", epoch, _fmt(record), best[0])
                break
        epochs.append(record)
        log.info("sessions epoch %d: %s", epoch, _fmt(record))
    if best_weights is not None:
        for variable, value in zip(variables, best_weights):
            variable.assign(value)
    seconds = time.perf_counter() - started
    return {"epochs": epochs, "best_epoch": best[0] if best else len(epochs), "seconds": seconds,
            "events_per_second": events / max(sum(e["seconds"] for e in epochs), 1e-9)}


def _fmt(record: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch")


def gru_scorer(model: GRU4Rec, model_rows: np.ndarray, counts: np.ndarray,
               max_length: Optional[int] = None) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """score_fn for ``sequences/evaluate.py``: prefixes of catalog rows -> [b, N_catalog] scores.
    ``model_rows`` [N_catalog] maps catalog rows to model rows (-1: none; scored -inf). Unknown
    items in a prefix are skipped; a prefix with none known gets log(1 + training count), the
    popularity list the served model falls back to. Scores are taken before the final activation
    (monotone, so the same order, without the ties a saturating tanh or relu would make)."""
    encode = tf.function(model.encode, reduce_retracing=True)
    columns = np.flatnonzero(model_rows >= 0)
    picked = model_rows[columns] - 1  # score_all's column of each of those catalog rows
    fallback = np.log1p(np.asarray(counts, np.float32))[picked]

    def score(prefixes: Sequence[np.ndarray]) -> np.ndarray:
        rows = [r[r > 0] for r in (model_rows[np.asarray(p, np.int64)] for p in prefixes)]
        padded, lengths = pad_sequences(rows, max_length)
        model_scores = model.score_all(encode(tf.constant(padded), tf.constant(lengths)), activate=False).numpy()
        out = np.full((len(prefixes), len(model_rows)), -np.inf, np.float32)
        out[:, columns] = model_scores[:, picked]
        out[lengths == 0, :] = -np.inf
        out[np.ix_(lengths == 0, columns)] = fallback
        return out

    return score


@dataclass
class TrainedSessions:
    """A trained GRU4Rec with its vocabulary and the config it was trained under."""

    cfg: Config
    model: GRU4Rec
    vocabulary: Vocabulary


@dataclass(frozen=True)
class Cases:
    """Evaluation cases of one held-out part, items as catalog rows.

    prefixes[c]: what the model reads, oldest first (the session so far; under leave-last-out the
    user's whole earlier sequence); targets [C]: the next item; events: the target events' rows
    (user_id, timestamp, user_* features: what a user-based model's query needs); before: the
    events known before the part (train for validation, train + validation for test)."""

    prefixes: list
    targets: np.ndarray
    events: pd.DataFrame
    before: pd.DataFrame
    leave_last_out: bool


def cases_of(data: RunData, cfg: Config, part: str) -> Cases:
    """leave_last_out: one case per user (the earlier sequence -> the held-out event); otherwise
    every next event of each held-out session (``next_item_cases``)."""
    catalog_ids = pd.Index(data.catalog["item_id"].astype(str))
    splits, d = data.splits, cfg.data
    target = splits.val if part == "val" else splits.test
    before = splits.train if part == "val" else splits.known()
    if d.split == "leave_last_out":
        history = sequences_of(before, catalog_ids, "user", d.session_gap_minutes, d.seed)
        by_user = {user: history.get(s) for s, user in enumerate(history.users)}
        target = target[target["user_id"].isin(by_user)].reset_index(drop=True)
        return Cases([by_user[u] for u in target["user_id"]], catalog_ids.get_indexer(target["item_id"].astype(str)),
                     target, before, True)
    if "session_position" not in target.columns:
        target = assign_sessions(target, d.session_gap_minutes, d.seed)
    target = target.reset_index(drop=True)
    offsets, order, _ = session_sequences(target, np.arange(len(target)))  # frame rows in session order
    prefixes, _ = next_item_cases(offsets, catalog_ids.get_indexer(target["item_id"].astype(str))[order])
    target_rows = order[np.concatenate([np.arange(a + 1, b) for a, b in zip(offsets[:-1], offsets[1:])] or [[]])
                        .astype(np.int64)]
    events = target.iloc[target_rows].reset_index(drop=True)
    return Cases(prefixes, catalog_ids.get_indexer(events["item_id"].astype(str)), events, before, False)


def evaluate_cases(score_fn, cases: Cases, k: int, limit: Optional[int] = None, seed: int = 0) -> dict:
    """The protocol's metrics of ``score_fn`` (``sequences/evaluate.py``); ``limit`` samples that
    many cases under ``seed`` (per-epoch validation)."""
    prefixes, targets = cases.prefixes, cases.targets
    if limit is not None and len(targets) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(len(targets), limit, replace=False))
        prefixes, targets = [prefixes[i] for i in chosen], targets[chosen]
    if cases.leave_last_out:
        return evaluate_last_item(score_fn, prefixes, targets, k=LLO_K)
    return evaluate_next_item(score_fn, prefixes, targets, k=k)


def metric_name(cfg: Config) -> str:
    """The validation metric early stopping reads."""
    return f"hit_rate@{LLO_K}" if cfg.data.split == "leave_last_out" else f"recall@{cfg.sessions.k}"


def train_and_evaluate(cfg: Config, data: RunData) -> tuple[TrainedSessions, dict]:
    """GRU4Rec on ``data``'s training sequences, early stopping on validation, then GRU4Rec,
    popularity and session-kNN on the same test cases. Returns (trained, report)."""
    s, d = cfg.sessions, cfg.data
    if d.split not in ("session", "leave_last_out"):
        raise ValueError(f"data.split: the sessions stage needs 'session' (whole sessions per part) or 'leave_last_out' "
                         f"(user sequences), got {d.split!r}: a {d.split} split cuts sessions between the parts")
    catalog_ids = pd.Index(data.catalog["item_id"].astype(str))
    train = sequences_of(data.splits.train, catalog_ids, s.sequence, d.session_gap_minutes, d.seed)
    if not np.any(np.diff(train.offsets) >= 2):
        raise ValueError("sessions: no training sequence has 2 or more events (nothing to predict); "
                         "raise data.session_gap_minutes or use sessions.sequence=user")
    vocabulary = Vocabulary.from_training(train, catalog_ids)
    model_rows = vocabulary.model_rows(catalog_ids)
    tf.keras.utils.set_random_seed(cfg.seed)
    model = build_model(s, len(vocabulary), cfg.seed)
    gru = gru_scorer(model, model_rows, vocabulary.counts)
    val_cases = cases_of(data, cfg, "val") if len(data.splits.val) else None
    validate = None
    if val_cases is not None and len(val_cases.targets):
        validate = lambda: evaluate_cases(gru, val_cases, s.k, MAX_EVAL_CASES, cfg.seed)  # noqa: E731
    training = fit(model, train.mapped(model_rows), s, cfg.seed, validate, metric_name(cfg))
    test_cases = cases_of(data, cfg, "test")
    scorers = {"gru4rec": gru}
    for name, baseline in (("popularity", SessionPopularity()), ("session_knn", SessionKNN())):
        started = time.perf_counter()
        baseline.fit(train.offsets, train.items, len(catalog_ids))
        scorers[name] = baseline.score
        log.info("sessions: %s fitted in %.1fs", name, time.perf_counter() - started)
    results = {}
    for name, score_fn in scorers.items():
        started = time.perf_counter()
        results[name] = {**evaluate_cases(score_fn, test_cases, s.k), "seconds": time.perf_counter() - started}
        log.info("sessions test %s: %s", name, _fmt({k: v for k, v in results[name].items() if isinstance(v, float)}))
    report = {"protocol": d.split, "sequence": s.sequence, "loss": s.loss, "metric": metric_name(cfg),
              "sessions": {part: session_stats(frame) for part, frame in
                           (("train", data.splits.train), ("val", data.splits.val), ("test", data.splits.test))
                           if len(frame)},
              "items": len(vocabulary), "training": training, "test": results}
    return TrainedSessions(cfg, model, vocabulary), report


def run(cfg: Config) -> dict:
    """Prepares (or reuses) the run's data, trains, evaluates, writes ``<run_dir>/sessions/``."""
    tf.keras.utils.set_random_seed(cfg.seed)
    data = prepare_data(cfg)
    trained, report = train_and_evaluate(cfg, data)

    def write(tmp: Path) -> None:  # swapped in whole: never an old model with a new config
        save_trained(trained, tmp)
        atomic_write_json(tmp / "report.json", report)
        cfg.save(tmp / "config.yaml")

    atomic_write_dir(Path(cfg.run_dir) / "sessions", write)
    return report


def save_trained(trained: TrainedSessions, out: Path) -> None:
    tf.train.Checkpoint(model=trained.model).write(str(out / "checkpoint" / "sessions"))
    atomic_write_json(out / "vocabulary.json", {"item_ids": [str(i) for i in trained.vocabulary.item_ids],
                                                 "counts": trained.vocabulary.counts.tolist(),
                                                 "model": trained.model.get_config()})


def load_trained_sessions(run_dir: str | Path) -> TrainedSessions:
    """The trained session model of a run (FileNotFoundError naming the stage when there is none)."""
    out = Path(run_dir) / "sessions"
    checkpoint = out / "checkpoint" / "sessions"
    if not all(p.exists() for p in (Path(str(checkpoint) + ".index"), out / "vocabulary.json", out / "config.yaml")):
        raise FileNotFoundError(f"{run_dir}: no trained session model here (run `tfrs-app train-sessions` first)")
    cfg = load_config(out / "config.yaml")
    saved = read_json(out / "vocabulary.json")
    model = GRU4Rec(**saved["model"])
    tf.train.Checkpoint(model=model).read(str(checkpoint)).assert_existing_objects_matched()
    return TrainedSessions(cfg, model, Vocabulary(saved["item_ids"], np.asarray(saved["counts"])))


def format_sessions_report(report: dict) -> str:
    """The report as a table: one row per model on the test cases."""
    first = next(iter(report["test"].values()))
    keys = [k for k in first if isinstance(first[k], float) and k not in ("seconds", "repeat_share")]
    training = report["training"]
    lines = [f"protocol {report['protocol']} ({report['sequence']} sequences), {report['items']} items in the model, "
             f"loss {report['loss']}",
             f"training: best epoch {training['best_epoch']} of {len(training['epochs'])}, {training['seconds']:.1f}s, "
             f"{training['events_per_second']:,.0f} events/s",
             f"{'model':14s} " + " ".join(f"{k:>12s}" for k in keys)]
    for name, m in report["test"].items():
        lines.append(f"{name:14s} " + " ".join(f"{m[k]:12.4f}" for k in keys))
    return "\n".join(lines)
