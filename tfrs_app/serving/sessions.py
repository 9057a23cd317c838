"""Next items for a session, from the sessions stage's GRU4Rec, as a TF-Serving SavedModel, and
its Python client.

``SessionRecommenderServer`` is a ``tf.Module`` whose ``serving_default`` takes, per row b:

    inputs:  session_items [B, L] string  the session's item ids, oldest first ("" pads, anywhere;
                                          L may be 1..any, 1,000 and more included)
    outputs: item_ids [B, k] string       the top-k next items, best first ("" where fewer than k
                                          items are left after the exclusions)
             scores [B, k] float32        the model's score (final activation applied; 0 in an
                                          empty slot); on a fallback row count / max count
             known_items [B] int32        how many of the session's items the model knows
             fallback [B] bool            no item was known: the most popular training items

Semantics (N model items, H the last hidden size, model row r = vocabulary item r - 1, row 0
the unknown item):

1. A ``StringLookup`` over the vocabulary maps each id to its model row (an id the model never
   saw in training, and "", to 0). Unknown ids are skipped: the known rows are compacted to the
   left, each row's order kept, and ``GRU4Rec.encode`` runs over them, so a session with an
   unknown id (or "" in the middle) answers as the session without it. The loop runs for the
   longest known part of the batch, every step of it (nothing is truncated).
2. scores [B, N] = ``GRU4Rec.score_all``; the session's own items are set to -inf; top-k.
3. A row with no known item gets the ``k`` most popular training items (``Vocabulary.counts``
   descending, ties by model row), ``fallback`` true, scores = count / max count.

``session_recommender`` scores the whole vocabulary (stock TensorFlow ops: stock TF Serving
loads it). ``session_recommender_scann`` (``import scann`` before loading it) retrieves with
ScaNN over [W_y[1:], b_y[1:]] against the query [h, 1]: the dot product is the pre-activation
score, and every final activation (linear, tanh, relu, elu) is monotone, so ranking by it is
the model's ranking (relu's ties at 0 may come back in another order); the activation is
applied to the returned scores. It asks for k + min(longest known part of the batch,
``exclude_budget``) neighbours so that dropping the session's items still leaves k. A row that
is left with fewer than k (a session of more than ``exclude_budget`` items crowding the top,
or ScaNN returning short) is answered by exact scoring, for that row alone: every row gets k
items (fewer only when the vocabulary has fewer than k items outside the session), and the
ScaNN export answers long sessions exactly rather than short or padded with popular items.

The item table and the popular list are variables; the vocabulary is the ``StringLookup``'s.
Titles are not in the graph: the export writes ``assets.extra/session_catalog.json`` (the
vocabulary's ids and titles), which ``SessionRecommendations`` reads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, NamedTuple, Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

from tfrs_app.serving.export import save_server
from tfrs_app.serving.inputs import checked

OUTPUTS = ("item_ids", "scores", "known_items", "fallback")
CATALOG = "assets.extra/session_catalog.json"
EXCLUDE_BUDGET = 100  # extra ScaNN neighbours per request, for the session's own items


def session_specs() -> dict[str, tf.TensorSpec]:
    """Signature input: session_items [B, L] string."""
    return {"session_items": tf.TensorSpec([None, None], tf.string, name="session_items")}


def scann_table(model) -> np.ndarray:
    """[N, H + 1] float32: the output item table with its bias as the last column (model rows
    1..N), so that query [h, 1] . row = the pre-activation score."""
    return np.concatenate([model.output_items.numpy()[1:], model.output_bias.numpy()[1:, None]], axis=1)


def scann_queries(output: tf.Tensor) -> tf.Tensor:
    """output [B, H] -> [B, H + 1]: the GRU's output with a 1 for the bias column."""
    return tf.concat([output, tf.ones_like(output[:, :1])], axis=1)


class SessionRecommenderServer(tf.Module):
    """A session's item ids -> top-k next items (module docstring).

    model: a ``GRU4Rec`` (its variables are kept, its methods traced); item_ids [N] str, the
    ids of model rows 1..N; counts [N] training events per item (the fallback list); k: list
    length (capped at N); index: None for exact scoring, or a ScaNN layer over
    ``scann_table(model)`` whose identifiers are the columns 0..N-1 (int64);
    exclude_budget: the ScaNN variant's extra neighbours for the session's items.
    """

    def __init__(self, model, item_ids: Sequence[str], counts: np.ndarray, k: int,
                 index: Optional[tf.keras.layers.Layer] = None, exclude_budget: int = EXCLUDE_BUDGET):
        super().__init__(name="session_recommender_server")
        ids = np.asarray(item_ids).astype(str)
        counts = np.asarray(counts, np.float64)
        n = len(ids)
        if n == 0:
            raise ValueError("session recommender: the vocabulary is empty")
        if n != model.num_items or counts.shape != (n,):
            raise ValueError(f"session recommender: the model has {model.num_items} items; got {n} ids and counts "
                             f"of shape {counts.shape}")
        if "" in set(ids.tolist()) or len(set(ids.tolist())) != n:
            raise ValueError("session recommender: the vocabulary's item ids must be unique and non-empty")
        self.k = min(int(k), n)
        if self.k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        self.num_candidates = n
        self.exclude_budget = int(exclude_budget)
        self.model_variables = list(model.variables)  # tracked so the SavedModel holds them; the Keras model is not
        self._encode, self._score_all, self._activation = model.encode, model.score_all, model.activation
        self.index = index
        self.lookup = tf.keras.layers.StringLookup(vocabulary=ids.tolist(), num_oov_indices=1, mask_token=None)
        self.ids = tf.Variable(ids, trainable=False, name="item_ids")
        order = np.argsort(-counts, kind="stable")[: self.k]  # ties: the lower model row first
        self.popular_columns = tf.Variable(order.astype(np.int64), trainable=False, name="popular_columns")
        self.popular_scores = tf.Variable((counts[order] / max(counts.max(), 1.0)).astype(np.float32),
                                          trainable=False, name="popular_scores")
        self.input_specs = session_specs()
        self.serve = tf.function(self._serve)

    @classmethod
    def from_trained(cls, trained, index=None) -> "SessionRecommenderServer":
        """The server of a ``TrainedSessions`` (``sequences.train.load_trained_sessions``),
        k = ``cfg.sessions.k``."""
        return cls(trained.model, trained.vocabulary.item_ids, trained.vocabulary.counts, trained.cfg.sessions.k, index)

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(self.input_specs)}

    def _serve(self, features):
        items = checked(features, self.input_specs)["session_items"]  # a named error for a wrong rank
        compact, lengths = self._compact(items)
        output = self._encode(compact, lengths)  # [B, H]
        if self.index is None:
            cols, scores, ok = self._exact(output, compact)
        else:
            cols, scores, ok = self._scann(output, compact, lengths)
        fallback = lengths == 0
        batch = tf.shape(items)[0]
        cols = tf.where(fallback[:, None], tf.tile(self.popular_columns[None, :], [batch, 1]), cols)
        scores = tf.where(fallback[:, None], tf.tile(self.popular_scores[None, :], [batch, 1]), scores)
        ok = fallback[:, None] | ok
        return {"item_ids": tf.ensure_shape(tf.where(ok, tf.gather(self.ids, cols), ""), [None, self.k]),
                "scores": tf.ensure_shape(tf.where(ok, scores, 0.0), [None, self.k]),
                "known_items": lengths,
                "fallback": fallback}

    def _compact(self, items: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """items [B, L] string -> (rows [B, W] int64, the known ones left-aligned in order, 0 after;
        lengths [B] int32), W the longest known part of the batch (0 when nothing is known)."""
        rows = tf.cast(self.lookup(items), tf.int64)
        known = rows > 0
        lengths = tf.reduce_sum(tf.cast(known, tf.int32), axis=1)
        slot = tf.cumsum(tf.cast(known, tf.int64), axis=1) - 1  # where each known item goes
        at = tf.where(known)  # [M, 2]
        compact = tf.tensor_scatter_nd_update(tf.zeros_like(rows), tf.stack([at[:, 0], tf.gather_nd(slot, at)], axis=1),
                                              tf.gather_nd(rows, at))
        width = tf.reduce_max(tf.concat([lengths, [0]], axis=0))
        return compact[:, :width], lengths

    def _exact(self, output: tf.Tensor, compact: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Every item scored, the session's set to -inf: (cols [M, k] int64, scores [M, k], ok [M, k])."""
        scores = self._score_all(output)  # [M, N]
        at = tf.where(compact > 0)
        session = tf.stack([at[:, 0], tf.gather_nd(compact, at) - 1], axis=1)
        scores = tf.tensor_scatter_nd_update(scores, session, tf.fill([tf.shape(at)[0]], -np.inf))
        top, cols = tf.math.top_k(scores, k=self.k)
        return tf.cast(cols, tf.int64), top, top > -np.inf

    def _scann(self, output: tf.Tensor, compact: tf.Tensor, lengths: tf.Tensor):
        """k + min(W, exclude_budget) ScaNN neighbours, the session's items dropped, the first k
        kept; rows left with fewer than k answered by ``_exact``."""
        retrieve = self.k + tf.minimum(tf.shape(compact)[1], self.exclude_budget)
        raw, cols = self.index(scann_queries(output), k=retrieve)
        # ScaNN may return fewer columns than asked, or pad with NaN scores: pad to retrieve, never an item
        missing = retrieve - tf.shape(cols)[1]
        cols = tf.pad(tf.cast(cols, tf.int64), [[0, 0], [0, missing]])
        raw = tf.pad(tf.cast(raw, tf.float32), [[0, 0], [0, missing]], constant_values=np.nan)
        excluded = tf.reduce_any(cols[:, :, None] + 1 == compact[:, None, :], axis=2)
        ok = tf.math.is_finite(raw) & ~excluded
        positions = tf.cast(retrieve - tf.range(retrieve), tf.float32)[None, :]
        key, slot = tf.math.top_k(tf.where(ok, positions, -1.0), k=self.k)  # the first k ok, in order
        cols, ok = tf.gather(cols, slot, batch_dims=1), key > 0
        scores = self._activation(tf.gather(raw, slot, batch_dims=1))
        short = tf.where(~tf.reduce_all(ok, axis=1) & (lengths > 0))  # [S, 1]
        exact_cols, exact_scores, exact_ok = self._exact(tf.gather_nd(output, short), tf.gather_nd(compact, short))
        return (tf.tensor_scatter_nd_update(cols, short, exact_cols),
                tf.tensor_scatter_nd_update(scores, short, exact_scores),
                tf.tensor_scatter_nd_update(ok, short, exact_ok))


def save_session_server(server: SessionRecommenderServer, path: Path, metadata: dict, titles: Sequence[str],
                        scann: bool = False, warmup: Optional[Mapping[str, np.ndarray]] = None) -> None:
    """``export.save_server``, then ``assets.extra/session_catalog.json``: the vocabulary's ids and
    ``titles`` [N] (the client's titles; TF Serving ignores the file)."""
    ids = [i.decode() for i in server.ids.numpy()]
    if len(titles) != len(ids):
        raise ValueError(f"session recommender: {len(ids)} items need {len(ids)} titles, got {len(titles)}")
    save_server(server, path, metadata=metadata, scann=scann, warmup=warmup)
    (path / CATALOG).write_text(json.dumps({"item_ids": ids, "titles": [str(t) for t in titles]}))


# ---- the Python client ----------------------------------------------------------------------


class SessionItem(NamedTuple):
    item_id: str
    title: str
    score: float


@dataclass(frozen=True)
class SessionRecommendation:
    """One session's answer: the inputs as given, the next items, and what the model knew."""

    inputs: list
    items: list  # [SessionItem], best first
    known_items: int
    fallback: bool
    unknown: list = field(default_factory=list)  # input ids the model does not know (skipped)

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "known_items": self.known_items, "fallback": self.fallback,
                "unknown": self.unknown, "items": [item._asdict() for item in self.items]}


def session_request(sessions: Sequence[Sequence[str]]) -> dict[str, tf.Tensor]:
    """Signature inputs from Python lists: each session (oldest first) padded with "" to one
    width (at least 1). ValueError naming the session that is a string or holds a non-string."""
    sessions = list(sessions)
    for row, session in enumerate(sessions):
        if isinstance(session, (str, bytes)) or not all(isinstance(i, str) for i in session):
            raise ValueError(f"session_items[{row}]: expected a list of item id strings, got {session!r}")
    width = max([len(s) for s in sessions] + [1])
    grid = np.array([list(s) + [""] * (width - len(s)) for s in sessions], dtype=object).astype(str)
    return {"session_items": tf.constant(grid.reshape(len(sessions), width))}


class SessionRecommendations:
    """Python face of a session model: ``recommend(items)`` -> SessionRecommendation.

    ``signature`` takes ``session_items``: a loaded SavedModel's ``signatures["serving_default"]``
    (``load``) or, in process, the server's concrete function (``from_server``); ``k`` is the
    model's list length; ``titles`` {item id: title} of the model's items (its vocabulary).
    """

    def __init__(self, signature, k: int, titles: Mapping[str, str]):
        self.signature = signature
        self.k = int(k)
        self.titles = dict(titles)

    @classmethod
    def from_server(cls, server: SessionRecommenderServer,
                    titles: Optional[Sequence[str]] = None) -> "SessionRecommendations":
        ids = [i.decode() for i in server.ids.numpy()]
        return cls(server.signatures()["serving_default"], server.k,
                   dict(zip(ids, [""] * len(ids) if titles is None else titles)))

    @classmethod
    def load(cls, path) -> "SessionRecommendations":
        """From an exported ``session_recommender`` or ``session_recommender_scann`` base path or
        version folder, or a folder of models holding ``session_recommender`` (``saved_models``).
        ValueError naming the path when it holds no session model."""
        from tfrs_app.serving.load import load_saved_model, metadata, resolve_version, version_dirs

        path = Path(path)
        if not (path / "saved_model.pb").exists() and (path / "session_recommender").is_dir():
            path = path / "session_recommender"
        if path.is_dir() and not (path / "saved_model.pb").exists() and not version_dirs(path):
            raise ValueError(f"{path}: no session model here (no session_recommender export, no SavedModel versions); "
                             f"`tfrs-app export` a run with `tfrs-app train-sessions` and give its session_recommender")
        version = resolve_version(path)
        meta = metadata(version)
        if not str(meta.get("model", "")).startswith("session_recommender"):
            raise ValueError(f"{version}: not a session model export (model: {meta.get('model')!r}); give a "
                             f"session_recommender base path (`tfrs-app export` of a run with `tfrs-app train-sessions`)")
        catalog = json.loads((version / CATALOG).read_text())
        return cls(load_saved_model(version).signatures["serving_default"], meta["k"],
                   dict(zip(catalog["item_ids"], catalog["titles"])))

    def recommend_batch(self, sessions: Sequence[Sequence[str]], k: Optional[int] = None) -> list[SessionRecommendation]:
        """One ``SessionRecommendation`` per session (oldest first); ``k`` (default: the model's)
        cuts the lists shorter."""
        sessions = [list(s) if not isinstance(s, (str, bytes)) else s for s in sessions]  # read twice below
        k = self.k if k is None else int(k)
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        if k > self.k:
            raise ValueError(f"k: the model returns at most {self.k} items (its export k); got {k}")
        out = {name: value.numpy() for name, value in self.signature(**session_request(sessions)).items()}
        results = []
        for b, session in enumerate(sessions):
            items = [SessionItem(i.decode(), self.titles.get(i.decode(), ""), float(s))
                     for i, s in zip(out["item_ids"][b, :k], out["scores"][b, :k]) if i]
            unknown = [item for item in session if item and item not in self.titles]
            results.append(SessionRecommendation(list(session), items, int(out["known_items"][b]),
                                                 bool(out["fallback"][b]), unknown))
        return results

    def recommend(self, items: Sequence[str], k: Optional[int] = None) -> SessionRecommendation:
        """The next items after one session (its item ids, oldest first)."""
        if isinstance(items, (str, bytes)):
            items = [items]
        return self.recommend_batch([list(items)], k)[0]


def format_sessions(result: SessionRecommendation) -> str:
    """The answer as a table (rank, item id, title, score), with what was unknown and whether the
    most-popular fallback was served."""
    inputs = [i for i in result.inputs if i]
    lines = [f"session of {len(inputs)} items (oldest first): {result.known_items} known to the model; fallback: "
             f"{'yes' if result.fallback else 'no'}"]
    for item in dict.fromkeys(result.unknown):
        lines.append(f"unknown item {item}: not in the model's vocabulary, skipped")
    if result.fallback:
        lines.append("fallback: no item of the session is known; these are the most popular training items "
                     "(score = count / max count)")
    lines.append(f"{'rank':>4}  {'item':>10}  {'score':>7}  title")
    for rank, item in enumerate(result.items, 1):
        lines.append(f"{rank:>4}  {item.item_id:>10}  {item.score:7.4f}  {item.title[:60]}")
    return "\n".join(lines)
