"""Related items of an item or a basket, from the graph stage's dual embeddings, as a TF-Serving
SavedModel, and its Python client.

``RelatedItemsServer`` is a ``tf.Module`` whose ``serving_default`` takes, per row b:

    inputs:  item_ids [B, L] string     the basket ("" pads; L may be 1..any; one item = L of 1)
             item_titles [B, L] string  metadata, read ONLY for ids not in the catalog
             item_genres [B, L] string  ("|"-joined); pass "" when there is none
    outputs: item_ids [B, k] string     the top-k related catalog items, best first ("" where
             item_titles [B, k] string  fewer than k items are left after the exclusions)
             scores [B, k] float32      query . target(item) (0 in an empty slot); on a fallback
                                        row the item's normalised popularity in [0, 1]
             num_known [B] int32        how many inputs were catalog items
             fallback [B] bool          nothing contributed: the most-followed items were served
             input_known [B, L] bool    which inputs were catalog items

Semantics (N catalog items, D dimensions; Score(A -> B) = source(A) . target(B)):

1. Each input that is a catalog item contributes its precomputed source row (the graph stage's
   ``embeddings.npz``; an item without edges already has its metadata-only row there). An id
   not in the catalog that comes with a title or genres contributes ``model.encode(...)``'s
   source embedding (metadata only, the id is the OOV row: the documented cold-start
   fallback); one with neither contributes nothing.
2. query [B, D] = the mean of the contributions; scores [B, N] = query . target.
3. The basket's catalog items are excluded (never returned); top-k of the rest.
4. A row where nothing contributes gets the ``k`` most-followed items (in-weight of the known
   graph, ``TrainedGraph.popularity``, descending, ties by catalog row), ``fallback`` true,
   scores = popularity / max popularity. Such a row has no catalog item to exclude.

``related_items`` scores the whole catalog with a matmul and ``tf.math.top_k`` (stock
TensorFlow ops: stock TF Serving loads it); ``related_items_scann`` retrieves the k + L
nearest targets with ScaNN and drops the inputs (``import scann`` before loading it). ScaNN
reorders at most ``num_reordering_candidates`` (400 by default) exactly, so a basket of more
than that minus k items can come back short: send such baskets to ``related_items``. The
tables (ids, titles, source and target [N, D], the id -> row hash table, the popular list)
are variables, so they go into ``variables/`` and the ``saved_model.pb`` stays small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Sequence

import numpy as np

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

from tfrs_app.serving.inputs import checked

OUTPUTS = ("item_ids", "item_titles", "scores", "num_known", "fallback", "input_known")


def related_specs() -> dict[str, tf.TensorSpec]:
    """Signature inputs: item_ids, item_titles, item_genres, all [B, L] string."""
    return {name: tf.TensorSpec([None, None], tf.string, name=name)
            for name in ("item_ids", "item_titles", "item_genres")}


class RelatedItemsServer(tf.Module):
    """Basket of item ids (with metadata for unknown ones) -> top-k related catalog items.

    model: the trained ``DualGraphModel`` (only its metadata encoder and hop layers are kept,
    for inputs outside the catalog); item_ids, titles [N] str; source, target [N, D] float32
    (L2-normalised, rows = item_ids); popularity [N] (in-weight per item); k: list length
    (capped at N); index: None for exact scoring, or a ScaNN layer over ``target`` whose
    identifiers are the catalog rows 0..N-1 (int64).
    """

    def __init__(self, model, item_ids: Sequence[str], titles: Sequence[str], source: np.ndarray,
                 target: np.ndarray, popularity: np.ndarray, k: int, index: Optional[tf.keras.layers.Layer] = None):
        super().__init__(name="related_items_server")
        ids = np.asarray(item_ids).astype(str)
        n = len(ids)
        source, target = np.asarray(source, np.float32), np.asarray(target, np.float32)
        popularity = np.asarray(popularity, np.float64)
        if n == 0:
            raise ValueError("related items: the catalog is empty")
        if source.shape != target.shape or source.ndim != 2 or source.shape[0] != n:
            raise ValueError(f"related items: source and target must both be [N={n}, D], got {source.shape} and "
                             f"{target.shape}")
        if popularity.shape != (n,) or len(titles) != n:
            raise ValueError(f"related items: titles and popularity need {n} values (one per item), got "
                             f"{len(titles)} and {popularity.shape}")
        if len(set(ids.tolist())) != n:
            raise ValueError("related items: the catalog's item ids are not unique")
        self.k = min(int(k), n)
        if self.k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        self.num_candidates = n
        # the metadata encoder's layers, tracked so encode()'s variables are saved; the model itself
        # is not (its neighbour samples [N, K] x 3 are training state, not what serving needs)
        self.encoder = model.encoder
        self.hop_layers = list(model.source_layers) + list(model.target_layers)
        self._encode = model.encode
        self.index = index
        self.ids = tf.Variable(ids, trainable=False, name="item_ids")
        self.titles = tf.Variable(np.asarray(titles).astype(str), trainable=False, name="item_titles")
        self.source = tf.Variable(source, trainable=False, name="source")
        self.target = tf.Variable(target, trainable=False, name="target")
        self.rows = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=-1, name="rows")
        self.rows.insert(tf.constant(ids), tf.range(n, dtype=tf.int64))
        order = np.argsort(-popularity, kind="stable")[: self.k]  # ties: the lower catalog row first
        top = popularity.max() if n else 0.0
        self.popular_rows = tf.Variable(order.astype(np.int64), trainable=False, name="popular_rows")
        self.popular_scores = tf.Variable((popularity[order] / (top if top > 0 else 1.0)).astype(np.float32),
                                          trainable=False, name="popular_scores")
        self.input_specs = related_specs()
        self.serve = tf.function(self._serve)

    @classmethod
    def from_trained(cls, trained, k: Optional[int] = None, index=None) -> "RelatedItemsServer":
        """The server of a ``TrainedGraph`` (``graph.train.load_trained_graph``); k defaults to
        ``cfg.graph.k``."""
        catalog = trained.catalog
        return cls(trained.model, catalog["item_id"].astype(str).to_numpy(), catalog["item_title"].astype(str).to_numpy(),
                   trained.source, trained.target, trained.popularity(),
                   trained.cfg.graph.k if k is None else k, index)

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(self.input_specs)}

    def _serve(self, features):
        features = checked(features, self.input_specs)  # named errors for wrong ranks and batch sizes
        ids = features["item_ids"]
        same = [tf.debugging.Assert(tf.reduce_all(tf.equal(tf.shape(features[name]), tf.shape(ids))), [
            tf.strings.format(f"{name}: expected the shape of item_ids [B, L] {{}}, got {{}}",
                              (tf.shape(ids), tf.shape(features[name])))]) for name in ("item_titles", "item_genres")]
        with tf.control_dependencies(same):
            titles, genres = tf.identity(features["item_titles"]), tf.identity(features["item_genres"])
        query, rows, known, count = self._query(ids, titles, genres)
        fallback = count == 0
        if self.index is None:
            cols, scores, ok = self._exact(query, rows, known)
        else:
            cols, scores, ok = self._scann(query, rows, known, tf.shape(ids)[1])
        batch = tf.shape(ids)[0]
        popular = tf.tile(self.popular_rows[None, :], [batch, 1])
        cols = tf.where(fallback[:, None], popular, cols)
        scores = tf.where(fallback[:, None], tf.tile(self.popular_scores[None, :], [batch, 1]), scores)
        ok = fallback[:, None] | ok
        return {"item_ids": tf.where(ok, tf.gather(self.ids, cols), ""),
                "item_titles": tf.where(ok, tf.gather(self.titles, cols), ""),
                "scores": tf.where(ok, scores, 0.0),
                "num_known": tf.reduce_sum(tf.cast(known, tf.int32), axis=1),
                "fallback": fallback,
                "input_known": known}

    def _query(self, ids, titles, genres):
        """(query [B, D], rows [B, L] int64 (-1 = not in the catalog), known [B, L] bool,
        count [B] float32 contributions)."""
        rows = tf.ensure_shape(self.rows.lookup(ids), ids.shape)  # the lookup states no shape
        present = ids != ""
        known = present & (rows >= 0)
        cold = present & ~known & ((titles != "") | (genres != ""))
        contributions = tf.where(known[..., None], tf.gather(self.source, tf.maximum(rows, 0)), 0.0)  # [B, L, D]
        at = tf.where(cold)  # [M, 2]: only unknown inputs with metadata go through the encoder
        encoded, _ = self._encode({"item_id": tf.gather_nd(ids, at), "item_title": tf.gather_nd(titles, at),
                                   "item_genres": tf.gather_nd(genres, at)}, training=False)
        contributions = tf.tensor_scatter_nd_update(contributions, at, tf.cast(encoded, tf.float32))
        count = tf.reduce_sum(tf.cast(known | cold, tf.float32), axis=1)
        query = tf.reduce_sum(contributions, axis=1) / tf.maximum(count, 1.0)[:, None]
        return query, rows, known, count

    def _exact(self, query, rows, known):
        """Every catalog item scored, the inputs set to -inf: (cols [B, k], scores [B, k], ok [B, k])."""
        scores = tf.matmul(query, self.target, transpose_b=True)  # [B, N]
        at = tf.where(known)
        inputs = tf.stack([at[:, 0], tf.gather_nd(rows, at)], axis=1)
        scores = tf.tensor_scatter_nd_update(scores, inputs, tf.fill([tf.shape(at)[0]], -np.inf))
        top, cols = tf.math.top_k(scores, k=self.k)
        return tf.cast(cols, tf.int64), top, top > -np.inf

    def _scann(self, query, rows, known, width):
        """The k + L nearest targets by ScaNN, the inputs dropped, the first k kept."""
        retrieve = self.k + width
        scores, cols = self.index(query, k=retrieve)
        # ScaNN may return fewer columns than asked, or pad with NaN scores: pad to k + L, never an item
        missing = retrieve - tf.shape(cols)[1]
        cols = tf.pad(tf.cast(cols, tf.int64), [[0, 0], [0, missing]])
        scores = tf.pad(tf.cast(scores, tf.float32), [[0, 0], [0, missing]], constant_values=np.nan)
        excluded = tf.reduce_any((cols[:, :, None] == rows[:, None, :]) & known[:, None, :], axis=2)
        ok = tf.math.is_finite(scores) & ~excluded
        positions = tf.cast(retrieve - tf.range(retrieve), tf.float32)[None, :]
        key, slot = tf.math.top_k(tf.where(ok, positions, -1.0), k=self.k)  # the first k ok, in order
        return (tf.gather(cols, slot, batch_dims=1), tf.gather(scores, slot, batch_dims=1), key > 0)


# ---- the Python client ----------------------------------------------------------------------


class RelatedItem(NamedTuple):
    item_id: str
    title: str
    score: float


@dataclass(frozen=True)
class Related:
    """One row's answer: the inputs as given, the related items, and how the query was formed."""

    inputs: list
    items: list  # [RelatedItem], best first
    num_known: int
    fallback: bool
    unknown: list = field(default_factory=list)  # input ids not in the catalog
    described: list = field(default_factory=list)  # those of them that came with a title or genres

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "num_known": self.num_known, "fallback": self.fallback,
                "unknown": self.unknown, "described": self.described,
                "items": [item._asdict() for item in self.items]}


def related_request(baskets: Sequence[Sequence[str]], titles: Optional[Sequence[Sequence[str]]] = None,
                    genres: Optional[Sequence[Sequence[str]]] = None) -> dict[str, tf.Tensor]:
    """Signature inputs from Python lists: each basket padded with "" to one width (at least 1).
    ``titles``/``genres``: per basket, one value per item ("" = none), or None for all "".
    ValueError naming the field for a basket that is a string or a length that differs."""
    baskets = list(baskets)
    for row, basket in enumerate(baskets):
        if isinstance(basket, (str, bytes)) or not all(isinstance(i, str) for i in basket):
            raise ValueError(f"item_ids[{row}]: expected a list of item id strings, got {basket!r}")
    width = max([len(b) for b in baskets] + [1])

    def padded(name: str, values) -> tf.Tensor:
        if values is None:
            values = [[""] * len(b) for b in baskets]
        values = list(values)
        if len(values) != len(baskets):
            raise ValueError(f"{name}: expected {len(baskets)} lists (one per basket), got {len(values)}")
        for row, (basket, these) in enumerate(zip(baskets, values)):
            if isinstance(these, (str, bytes)) or len(these) != len(basket):
                raise ValueError(f"{name}[{row}]: expected {len(basket)} values (one per item id), got {these!r}")
        grid = np.array([[("" if v is None else str(v)) for v in these] + [""] * (width - len(these))
                         for these in values], dtype=object).astype(str)
        return tf.constant(grid.reshape(len(baskets), width))

    return {"item_ids": padded("item_ids", baskets), "item_titles": padded("item_titles", titles),
            "item_genres": padded("item_genres", genres)}


class RelatedItems:
    """Python face of a related-items model: ``related(item_ids)`` -> [(item_id, title, score)].

    ``signature`` takes item_ids, item_titles, item_genres as keyword arguments: a loaded
    SavedModel's ``signatures["serving_default"]`` (``RelatedItems.load``) or, in process, the
    server's concrete function (``RelatedItems.from_server``); ``k`` is the model's list length.
    """

    def __init__(self, signature, k: int):
        self.signature = signature
        self.k = int(k)

    @classmethod
    def from_server(cls, server: RelatedItemsServer) -> "RelatedItems":
        return cls(server.signatures()["serving_default"], server.k)

    @classmethod
    def load(cls, path) -> "RelatedItems":
        """From an exported ``related_items`` or ``related_items_scann`` base path or version
        folder (``load_saved_model`` imports ScaNN first for the ScaNN export)."""
        from tfrs_app.serving.load import load_saved_model, metadata, resolve_version

        version = resolve_version(path)
        meta = metadata(version)
        if not str(meta.get("model", "")).startswith("related_items"):
            raise ValueError(f"{version}: not a related-items export (model: {meta.get('model')!r})")
        return cls(load_saved_model(version).signatures["serving_default"], meta["k"])

    def related_batch(self, baskets: Sequence[Sequence[str]], k: Optional[int] = None,
                      titles: Optional[Sequence[Sequence[str]]] = None,
                      genres: Optional[Sequence[Sequence[str]]] = None) -> list[Related]:
        """One ``Related`` per basket; ``k`` (default: the model's) cuts the list shorter."""
        baskets = [list(b) if not isinstance(b, (str, bytes)) else b for b in baskets]  # read twice below
        k = self.k if k is None else int(k)
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        if k > self.k:
            raise ValueError(f"k: the model returns at most {self.k} items (its export k); got {k}")
        request = related_request(baskets, titles, genres)
        out = {name: value.numpy() for name, value in self.signature(**request).items()}
        results = []
        for b, basket in enumerate(baskets):
            items = [RelatedItem(i.decode(), t.decode(), float(s))
                     for i, t, s in zip(out["item_ids"][b, :k], out["item_titles"][b, :k], out["scores"][b, :k])
                     if i]
            names = request["item_titles"].numpy()[b], request["item_genres"].numpy()[b]
            unknown = [item for j, item in enumerate(basket) if item and not out["input_known"][b, j]]
            described = [item for j, item in enumerate(basket)
                         if item and not out["input_known"][b, j] and (names[0][j] or names[1][j])]
            results.append(Related(list(basket), items, int(out["num_known"][b]), bool(out["fallback"][b]),
                                   unknown, described))
        return results

    def related(self, item_ids: Sequence[str], k: Optional[int] = None, titles: Optional[Sequence[str]] = None,
                genres: Optional[Sequence[str]] = None) -> list[RelatedItem]:
        """[(item_id, title, score)] related to one item or a basket, best first."""
        if isinstance(item_ids, (str, bytes)):
            item_ids = [item_ids]
        return self.related_batch([list(item_ids)], k, None if titles is None else [list(titles)],
                                  None if genres is None else [list(genres)])[0].items


def format_related(result: Related) -> str:
    """The answer as a table (rank, item id, title, score), with what was unknown and whether
    the most-followed fallback was served."""
    inputs = [i for i in result.inputs if i]
    lines = [f"related to {', '.join(inputs) or '(nothing)'}: {result.num_known} of {len(inputs)} inputs are "
             f"catalog items"]
    for item in result.unknown:
        how = ("embedded from its title/genres (cold start)" if item in result.described
               else "no title or genres given, so it was ignored")
        lines.append(f"unknown input {item}: not in the catalog; {how}")
    if result.fallback:
        lines.append("fallback: nothing known about the inputs; these are the most-followed items "
                     "(score = normalised popularity)")
    lines.append(f"{'rank':>4}  {'item':>10}  {'score':>7}  title")
    for rank, item in enumerate(result.items, 1):
        lines.append(f"{rank:>4}  {item.item_id:>10}  {item.score:7.4f}  {item.title[:60]}")
    return "\n".join(lines)
