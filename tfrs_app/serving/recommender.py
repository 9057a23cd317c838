"""One call, final recommendations: retrieve -> drop seen -> rank with MC dropout -> gate ->
blend -> MMR -> top-N, as a TF-Serving SavedModel.

``RecommenderServer`` is a ``tf.Module`` whose ``serving_default`` takes the raw query inputs
(``user_id`` [B], ``timestamp`` [B] int64, ``history`` [B, L], ``user_<f>`` [B]) and returns,
per row b:

    item_ids, item_titles [B, N] string ("" where fewer than N items qualify)
    score [B, N] float32            the blended score the list is ordered by (before MMR)
    <head>_mean, <head>_std [B, N]  MC-dropout mean and std per head
    <head>_bucket [B, N] int64, <head>_decision [B, N] bool
    num_results [B] int32
    path [B] string                 personalized | known_user_no_history |
                                    unknown_user_with_history | cold_start
    candidate_item_ids [B, R] string, candidate_status [B, R] string
                                    every retrieved item with what happened to it: recommended,
                                    seen (in the request's history), responsibility (gated
                                    out), not_selected (ranked, not in the top-N after MMR),
                                    beyond_k (not among the K unseen items that were ranked),
                                    unavailable (an empty slot an approximate index returned)

Steps, all in the graph:

1. ``history`` is the user's seen list, most recent first. The query tower pools its first
   ``history_length`` entries (what it was trained on); all entries are excluded.
2. Retrieval: R = K + ``exclude_budget`` nearest items (exact matmul + top-k, or ScaNN);
   the first K not in the history are ranked.
3. Ranker: T MC-dropout samples of the heads per candidate (trunk once); per head the
   ThresholdTable's bucket and decision.
4. Responsibility gate: a candidate whose responsibility decision is negative for its
   uncertainty bucket is dropped.
5. Blend: ``engagement_weight * engagement_mean + satisfaction_weight * satisfaction_mean
   - std_penalty * (engagement_std + satisfaction_std)``; rows not on the personalized path
   add ``cold_popularity_weight * log1p(train count) / log1p(max count)`` (cold start leans
   on popularity); every row adds ``watchnext_weight * engagement_mean * watchnext`` where
   ``watchnext`` is the candidate's normalised WatchNext value in [0, 1] (expected follow-on
   consumption after the item, ``graph/watchnext.py``): the total value of recommending an
   item = P(engage) x what consuming it leads to. ``watchnext_weight`` = 0 (the default)
   leaves the term out of the graph.
6. MMR (Carbonell and Goldstein 1998): N greedy picks of argmax ``lambda * blended -
   (1 - lambda) * max cosine similarity to the items already picked``, over the retrieval
   tower's candidate embeddings. lambda = 1 is plain ranking by the blended score.

Session routing, in the Python client only (``Recommender``; the exported graph is unchanged):
when a ``session_recommender`` export sits beside the recommender (same base dir), a request
whose user the retrieval model does not know but that has a history (path
``unknown_user_with_history``) is answered by the session model (``serving/sessions.py``,
GRU4Rec) with the history as the session, reversed to oldest first; ``Recommendation.source``
says ``session_model``. Its items are the session model's top list with its scores: they are
not ranked, gated or diversified (the graph takes no outside candidates), so they carry no
head values. When the session model knows none of the history (its popularity fallback), the
recommender's own answer stands. Every other row, and every row without a session export, is
the graph's answer with ``source`` ``recommender``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.config import HEADS
from tfrs_app.decision.thresholds import ThresholdTable
from tfrs_app.ranking.model import MultiHeadRanker
from tfrs_app.ranking.uncertainty import mc_logits, summarize
from tfrs_app.serving.export import query_specs
from tfrs_app.serving.inputs import checked
from tfrs_app.serving.load import query_request
from tfrs_app.serving.ranker import decide

PATHS = ("personalized", "known_user_no_history", "unknown_user_with_history", "cold_start")
STATUSES = ("recommended", "seen", "responsibility", "not_selected", "beyond_k", "unavailable")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Blend:
    """How the final list is scored and diversified (typed twin of RecommenderConfig)."""

    engagement_weight: float = 0.5
    satisfaction_weight: float = 0.5
    std_penalty: float = 0.0
    mmr_lambda: float = 0.7
    cold_popularity_weight: float = 0.1
    watchnext_weight: float = 0.0


@dataclass(frozen=True)
class Catalog:
    """Row i of every array is one item: ids, titles, genres [N] str; embeddings [N, D] float32
    (the retrieval candidate tower's item vectors, without the item-bias column:
    ``TrainedRetrieval.catalog_item_vectors``; normalised here, MMR needs cosines); counts [N]
    training events; watchnext [N] float32 normalised WatchNext values in [0, 1]
    (``graph.watchnext.load_watchnext``; None = zeros)."""

    ids: np.ndarray
    titles: np.ndarray
    genres: np.ndarray
    embeddings: np.ndarray
    counts: np.ndarray = field(default=None)
    watchnext: np.ndarray = field(default=None)


class RecommenderServer(tf.Module):
    def __init__(self, query_tower: tf.keras.Model, index: tf.keras.layers.Layer, ranker: MultiHeadRanker,
                 tables: Mapping[str, ThresholdTable], catalog: Catalog, user_features: Sequence[str],
                 ranker_user_features: Sequence[str], history_length: int, num_candidates: int = 100,
                 exclude_budget: int = 100, top_n: int = 10, mc_samples: int = 30, seed: int = 0,
                 blend: Blend = Blend()):
        super().__init__(name="recommender_server")
        n = len(catalog.ids)
        if not 1 <= top_n <= num_candidates:
            raise ValueError(f"top_n: must be in [1, num_candidates={num_candidates}], got {top_n}")
        if not 0.0 <= blend.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda: must be in [0, 1], got {blend.mmr_lambda}")
        if not blend.watchnext_weight >= 0:
            raise ValueError(f"watchnext_weight: must be >= 0, got {blend.watchnext_weight}")
        watchnext = np.zeros(n, np.float32) if catalog.watchnext is None else np.asarray(catalog.watchnext, np.float32)
        if watchnext.shape != (n,) or not np.isfinite(watchnext).all():
            raise ValueError(f"catalog.watchnext: expected {n} finite values (one per item), got shape "
                             f"{watchnext.shape}" + ("" if watchnext.shape != (n,) else " with non-finite values"))
        self.query_tower = query_tower
        self.index = index
        self.ranker = ranker
        self.history_length = int(history_length)
        self.num_candidates = min(int(num_candidates), n)
        self.retrieve = min(self.num_candidates + int(exclude_budget), n)
        self.top_n = min(int(top_n), self.num_candidates)
        self.mc_samples = int(mc_samples)
        self.seed = int(seed)
        self.blend = blend
        self.ranker_user_features = tuple(ranker_user_features)
        self.ids = tf.constant(catalog.ids.astype(str))
        self.titles = tf.constant(catalog.titles.astype(str))
        self.genres = tf.constant(catalog.genres.astype(str))
        norms = np.linalg.norm(catalog.embeddings, axis=1, keepdims=True)
        self.embeddings = tf.constant(catalog.embeddings / np.maximum(norms, 1e-12), tf.float32)
        counts = np.zeros(n) if catalog.counts is None else np.asarray(catalog.counts, np.float64)
        self.popularity = tf.constant((np.log1p(counts) / max(np.log1p(counts.max()), 1e-9)).astype(np.float32))
        self.watchnext = tf.constant(watchnext)  # [N], applied times watchnext_weight * P(engage)
        self.edges = {h: tf.constant(tables[h].edges, tf.float32, shape=[len(tables[h].edges)]) for h in HEADS}
        self.thresholds = {h: tf.constant(tables[h].thresholds, tf.float32) for h in HEADS}
        self.input_specs = query_specs(sorted(set(user_features) | set(ranker_user_features)))
        self.serve = tf.function(self._serve)

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(self.input_specs)}

    def _serve(self, features):
        features = checked(features, self.input_specs)  # named errors for wrong ranks, batch sizes, timestamps
        history = features["history"]
        batch = tf.shape(history)[0]
        query_inputs = dict(features, history=history[:, : self.history_length])
        query = self.query_tower(query_inputs, training=False)
        scores, rows = self.index(query, k=self.retrieve)  # [B, <=R] catalog rows
        # ScaNN may return fewer than R columns, or pad a row with NaN scores (and row 0): pad to R
        # and treat non-finite slots as unavailable, never as an item.
        missing = self.retrieve - tf.shape(rows)[1]
        shape = [history.shape[0], self.retrieve]  # the batch size as the request states it (None in a signature)
        rows = tf.ensure_shape(tf.pad(tf.cast(rows, tf.int64), [[0, 0], [0, missing]]), shape)
        scores = tf.pad(tf.cast(scores, tf.float32), [[0, 0], [0, missing]], constant_values=np.nan)
        available = tf.ensure_shape(tf.math.is_finite(scores), shape)
        retrieved = tf.where(available, tf.gather(self.ids, rows), "")
        seen = tf.reduce_any((retrieved[:, :, None] == history[:, None, :]) & (history[:, None, :] != ""), axis=2)
        seen |= ~available

        # the first K unseen, in retrieval order
        positions = tf.range(self.retrieve, dtype=tf.int64)
        order = tf.cumsum(tf.cast(~seen, tf.int64), axis=1)
        ranked = ~seen & (order <= self.num_candidates)
        key = tf.where(ranked, tf.cast(self.retrieve - positions, tf.float32)[None, :], -1.0)
        top_key, slot = tf.math.top_k(key, k=self.num_candidates)  # slot: position in R
        slot = tf.cast(slot, tf.int64)
        valid = top_key > 0
        cand = tf.gather(rows, slot, batch_dims=1)  # [B, K] catalog rows

        # the ranker, on B x K (user, candidate) pairs
        k = self.num_candidates
        pairs = {name: tf.repeat(query_inputs[name], k, axis=0)
                 for name in ("user_id", "timestamp", "history", *self.ranker_user_features)}
        flat = tf.reshape(cand, [-1])
        pairs.update(item_id=tf.gather(self.ids, flat), item_title=tf.gather(self.titles, flat),
                     item_genres=tf.gather(self.genres, flat))
        heads = {}
        for head, logits in mc_logits(self.ranker, pairs, self.mc_samples, self.seed).items():
            mean, std = (tf.reshape(t, [batch, k]) for t in summarize(logits))
            bucket, decision = decide(mean, std, self.edges[head], self.thresholds[head])
            heads[head] = {"mean": mean, "std": std, "bucket": bucket, "decision": decision}

        # path: who is asking
        known = self.query_tower.user.lookup(features["user_id"]) > 0
        has_history = tf.reduce_any(history != "", axis=1)
        path_index = tf.where(known, tf.where(has_history, 0, 1), tf.where(has_history, 2, 3))
        path = tf.gather(tf.constant(PATHS), path_index)

        # gate, blend, diversify
        eligible = valid & heads["responsibility"]["decision"]
        cold = tf.cast(path_index > 0, tf.float32)[:, None]
        watchnext = tf.gather(self.watchnext, cand) if self.blend.watchnext_weight else None
        blended = blend_scores(self.blend, heads, cold, tf.gather(self.popularity, cand), watchnext)
        vectors = tf.gather(self.embeddings, cand)  # [B, K, D]
        picks, ok = mmr(blended, eligible, tf.matmul(vectors, vectors, transpose_b=True), self.top_n,
                        self.blend.mmr_lambda)

        def take(values):
            return tf.gather(values, picks, batch_dims=1)

        chosen = take(cand)
        out = {
            "item_ids": tf.where(ok, tf.gather(self.ids, chosen), ""),
            "item_titles": tf.where(ok, tf.gather(self.titles, chosen), ""),
            "score": tf.where(ok, take(blended), 0.0),
            "num_results": tf.reduce_sum(tf.cast(ok, tf.int32), axis=1),
            "path": path,
        }
        for head, values in heads.items():
            out[f"{head}_mean"] = tf.where(ok, take(values["mean"]), 0.0)
            out[f"{head}_std"] = tf.where(ok, take(values["std"]), 0.0)
            out[f"{head}_bucket"] = tf.where(ok, take(values["bucket"]), tf.constant(-1, tf.int64))
            out[f"{head}_decision"] = ok & take(values["decision"])

        # what happened to every retrieved item
        picked = tf.reduce_any(tf.one_hot(picks, k, on_value=True, off_value=False) & ok[:, :, None], axis=1)
        status_k = tf.where(~heads["responsibility"]["decision"], "responsibility",
                            tf.where(picked, "recommended", "not_selected"))
        status = tf.where(~available, "unavailable", tf.where(seen, "seen", "beyond_k"))
        rows_b = tf.repeat(tf.range(batch, dtype=tf.int64)[:, None], k, axis=1)
        where = tf.boolean_mask(tf.stack([rows_b, slot], axis=-1), valid)
        out["candidate_status"] = tf.tensor_scatter_nd_update(status, where, tf.boolean_mask(status_k, valid))
        out["candidate_item_ids"] = retrieved
        return out


def blend_scores(blend: Blend, heads: Mapping[str, Mapping[str, tf.Tensor]], cold: tf.Tensor, popularity: tf.Tensor,
                 watchnext: Optional[tf.Tensor] = None) -> tf.Tensor:
    """[B, K] blended scores (step 5 of the module docstring).

    heads: {head: {"mean", "std"}} [B, K] MC-dropout summaries; cold [B, 1] float, 1 for rows off
    the personalized path; popularity, watchnext [B, K]: the candidates' values (``watchnext``
    may be None when ``blend.watchnext_weight`` is 0: the term is then not built at all, so the
    scores are bit-identical to a blend without it).
    """
    b = blend
    engagement = heads["engagement"]["mean"]
    blended = (b.engagement_weight * engagement + b.satisfaction_weight * heads["satisfaction"]["mean"]
               - b.std_penalty * (heads["engagement"]["std"] + heads["satisfaction"]["std"]))
    blended += cold * b.cold_popularity_weight * popularity
    if b.watchnext_weight:
        if watchnext is None:
            raise ValueError("blend_scores: watchnext_weight > 0 needs the candidates' WatchNext values")
        blended += b.watchnext_weight * engagement * watchnext
    return blended


def mmr(relevance: tf.Tensor, eligible: tf.Tensor, similarity: tf.Tensor, n: int, lam: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Greedy Maximal Marginal Relevance: ``n`` picks per row from [B, K] candidates.

    relevance [B, K]; eligible [B, K] bool; similarity [B, K, K]. Returns (picks [B, n] int
    positions, ok [B, n] bool: False once a row runs out of eligible candidates).
    """
    chosen = tf.zeros_like(eligible)
    closest = tf.zeros_like(relevance)  # max similarity to what is picked; 0 before the first pick
    picks, oks = [], []
    for step in range(n):
        value = lam * relevance - (1.0 - lam) * closest if step else relevance
        value = tf.where(eligible & ~chosen, value, -np.inf)
        pick = tf.argmax(value, axis=1, output_type=tf.int32)
        ok = tf.reduce_max(value, axis=1) > -np.inf
        chosen |= tf.one_hot(pick, tf.shape(relevance)[1], on_value=True, off_value=False) & ok[:, None]
        closest = tf.where(ok[:, None], tf.maximum(closest, tf.gather(similarity, pick, batch_dims=1)), closest)
        picks.append(pick)
        oks.append(ok)
    return tf.stack(picks, axis=1), tf.stack(oks, axis=1)


@dataclass(frozen=True)
class RecommendedItem:
    item_id: str
    title: str
    score: float
    heads: dict  # {head: {"mean", "std", "bucket", "decision"}}; {} for an item of the session model


@dataclass(frozen=True)
class Recommendation:
    user_id: str
    path: str
    items: list
    dropped: list  # [(item_id, reason)] for seen and gated items among the retrieved
    source: str = "recommender"  # or "session_model": who chose the items (module docstring, session routing)

    def to_dict(self) -> dict:
        return {"user_id": self.user_id, "path": self.path, "source": self.source,
                "items": [{"item_id": i.item_id, "title": i.title, "score": i.score, **i.heads} for i in self.items],
                "dropped": [{"item_id": item, "reason": reason} for item, reason in self.dropped]}


class Recommender:
    """Python face of a recommender: ``recommend(user_id, history, ...)`` -> Recommendation.

    ``signature`` takes the named inputs as keyword arguments: a loaded SavedModel's
    ``signatures["serving_default"]`` (``Recommender.load``) or, in process, the server's
    concrete function (``Recommender.from_server``). ``sessions``: a
    ``serving.sessions.SessionRecommendations`` that answers unknown users with a history
    (module docstring, session routing), or None; ``top_n`` cuts its lists to the recommender's
    length (None: the session model's k).
    """

    def __init__(self, signature, user_features: Sequence[str] = (), sessions=None, top_n: Optional[int] = None):
        self.signature = signature
        self.user_features = tuple(user_features)
        self.sessions = sessions
        self.top_n = top_n

    @classmethod
    def from_server(cls, server: RecommenderServer, sessions=None) -> "Recommender":
        names = [n for n in server.input_specs if n not in ("user_id", "timestamp", "history")]
        return cls(server.signatures()["serving_default"], names, sessions, server.top_n)

    @classmethod
    def load(cls, path) -> "Recommender":
        """From an exported ``recommender`` or ``recommender_scann`` base path or version folder;
        with the ``session_recommender`` of the same base dir (its newest complete version) when
        there is one from the same run (metadata ``run_dir``; another run's, or one that fails to
        load, is left out with a warning)."""
        from tfrs_app.serving.load import load_saved_model, metadata, newest_complete, resolve_version
        from tfrs_app.serving.sessions import SessionRecommendations

        version = resolve_version(path)
        meta = metadata(version)
        if meta.get("model", "").split("_")[0] != "recommender":
            raise ValueError(f"{version}: not a recommender export (model: {meta.get('model')!r})")
        beside = Path(version).resolve().parents[1] / "session_recommender"
        sessions = None
        newest = newest_complete(beside)[0]
        if newest is not None:
            if metadata(newest).get("run_dir") != meta.get("run_dir"):  # another run's catalog: not ours to route to
                log.warning("%s: from another run than %s; unknown users are not routed to it", beside, version)
            else:
                try:
                    sessions = SessionRecommendations.load(beside)
                except (OSError, ValueError) as error:  # routing is optional: serve without it, say why
                    log.warning("%s: cannot be loaded (%s); unknown users are not routed to it", beside, error)
        return cls(load_saved_model(version).signatures["serving_default"], meta.get("user_features", ()), sessions,
                   meta.get("top_n"))

    def recommend_batch(self, user_ids: Sequence[str], histories: Sequence[Sequence[str]],
                        timestamps: Optional[Sequence[int]] = None,
                        user_features: Optional[Mapping[str, Sequence[str]]] = None) -> list[Recommendation]:
        timestamps = list(timestamps) if timestamps is not None else [int(time.time())] * len(user_ids)
        features = {name: list((user_features or {}).get(name, [""] * len(user_ids))) for name in self.user_features}
        unknown = sorted(set(user_features or {}) - set(self.user_features))
        if unknown:
            raise ValueError(f"user_features: the model takes {list(self.user_features)}, not {unknown[0]!r}")
        out = self.signature(**query_request(list(user_ids), timestamps, list(histories), features))
        out = {k: v.numpy() for k, v in out.items()}
        results = []
        for b, user in enumerate(user_ids):
            items = []
            for j in range(int(out["num_results"][b])):
                heads = {h: {"mean": float(out[f"{h}_mean"][b, j]), "std": float(out[f"{h}_std"][b, j]),
                             "bucket": int(out[f"{h}_bucket"][b, j]), "decision": bool(out[f"{h}_decision"][b, j])}
                         for h in HEADS}
                items.append(RecommendedItem(out["item_ids"][b, j].decode(), out["item_titles"][b, j].decode(),
                                             float(out["score"][b, j]), heads))
            dropped = [(i.decode(), s.decode()) for i, s in zip(out["candidate_item_ids"][b], out["candidate_status"][b])
                       if s.decode() in ("seen", "responsibility")]
            results.append(Recommendation(str(user), out["path"][b].decode(), items, dropped))
        return self._route_sessions(results, histories)

    def _route_sessions(self, results: list[Recommendation], histories: Sequence[Sequence[str]]) -> list[Recommendation]:
        """Rows of unknown users with a history answered by the session model (module docstring),
        in one batch; the others, and rows where it knows none of the history, as they are."""
        rows = [b for b, result in enumerate(results) if result.path == "unknown_user_with_history"]
        if self.sessions is None or not rows:
            return results
        k = self.sessions.k if self.top_n is None else min(self.top_n, self.sessions.k)
        answers = self.sessions.recommend_batch([list(histories[b])[::-1] for b in rows], k)  # oldest first
        routed = list(results)
        for b, answer in zip(rows, answers):
            if not answer.fallback:
                items = [RecommendedItem(item.item_id, item.title, item.score, {}) for item in answer.items]
                routed[b] = Recommendation(results[b].user_id, results[b].path, items, [], "session_model")
        return routed

    def recommend(self, user_id: str, history: Sequence[str] = (), timestamp: Optional[int] = None,
                  user_features: Optional[Mapping[str, str]] = None) -> Recommendation:
        features = {k: [v] for k, v in (user_features or {}).items()}
        return self.recommend_batch([user_id], [list(history)], None if timestamp is None else [timestamp],
                                    features)[0]


def format_recommendation(rec: Recommendation) -> str:
    if rec.source == "session_model":
        lines = [f"user {rec.user_id}: path {rec.path}; {len(rec.items)} items from the session model (the history as "
                 f"the session; not ranked or gated)", f"{'rank':>4}  {'score':>7}  {'item':>8}  title"]
        lines += [f"{rank:>4}  {item.score:7.4f}  {item.item_id:>8}  {item.title[:50]}"
                  for rank, item in enumerate(rec.items, 1)]
        return "\n".join(lines)
    lines = [f"user {rec.user_id}: path {rec.path}; {len(rec.items)} items; dropped "
             f"{sum(r == 'seen' for _, r in rec.dropped)} seen, {sum(r == 'responsibility' for _, r in rec.dropped)} "
             "by the responsibility gate",
             f"{'rank':>4}  {'score':>5}  {'engage':>13}  {'satisfy':>13}  {'responsible':>13}  {'item':>8}  title"]
    for rank, item in enumerate(rec.items, 1):
        cells = [f"{item.heads[h]['mean']:.2f}±{item.heads[h]['std']:.2f} b{item.heads[h]['bucket']}"
                 for h in HEADS]
        lines.append(f"{rank:>4}  {item.score:5.3f}  {cells[0]:>13}  {cells[1]:>13}  {cells[2]:>13}  "
                     f"{item.item_id:>8}  {item.title[:50]}")
    return "\n".join(lines)
