"""Degree-adaptive neighbourhood samples, as padded index tensors the GNN gathers from.

BLADE (Virinchi and Saladi, WSDM 2023) samples "locally varying neighbourhoods which differ
based on a node's connectivity": a hub's strongest links already describe it, while every link
of a rare item counts. Our reading, stated so it can be checked:

- the sample size falls linearly in log-degree, from ``max_neighbours`` for the least connected
  node with any link to ``min_neighbours`` for the most connected (``sample_sizes``);
- a node with more neighbours than that draws them without replacement, proportionally to edge
  weight (Efraimidis-Spirakis keys u ** (1 / w)); a node with fewer keeps them all.

Tried and removed: filling a low-degree node's sample from its 2-hop neighbourhood (out-
neighbours of out-neighbours). On the synthetic directed log it changed test HitRate@10 by
nothing (0.4226 with it, 0.4230 without), and a base item with one known follow-on then
ranked the items two steps after it above its own follow-ons (README "Related items").

``Neighbours`` holds [N, max_neighbours] int32 indices with ``N`` (a zero row) as padding, one
array per relation: ``out`` (targets of A's outgoing edges), ``inc`` (sources of its incoming
edges) and ``sim`` (similar items). Samples are redrawn each epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tfrs_app.graph.edges import ItemGraph


def sample_sizes(degree: np.ndarray, min_neighbours: int, max_neighbours: int) -> np.ndarray:
    """[N] sample size per node: ``max_neighbours`` at the lowest positive degree, falling linearly
    in log(1 + degree) to ``min_neighbours`` at the highest; 0 for a node with no neighbours."""
    degree = np.asarray(degree, dtype=np.float64)
    sizes = np.zeros(len(degree), dtype=np.int64)
    linked = degree > 0
    if not linked.any():
        return sizes
    logs = np.log1p(degree[linked])
    span = logs.max() - logs.min()
    share = (logs - logs.min()) / span if span > 0 else np.zeros_like(logs)
    sizes[linked] = np.round(max_neighbours - share * (max_neighbours - min_neighbours)).astype(np.int64)
    return sizes


@dataclass(frozen=True)
class Neighbours:
    """[N, max_neighbours] int32 rows per relation; value N pads (the GNN's zero row)."""

    out: np.ndarray
    inc: np.ndarray
    sim: np.ndarray


class NeighbourSampler:
    """Draws ``Neighbours`` for an ``ItemGraph``; ``sample(rng)`` once per epoch."""

    def __init__(self, graph: ItemGraph, min_neighbours: int, max_neighbours: int):
        n = graph.num_items
        self.n, self.width = n, int(max_neighbours)
        self.min_neighbours = int(min_neighbours)
        out = sp.csr_matrix((graph.weight, (graph.src, graph.dst)), shape=(n, n))
        sim = sp.csr_matrix((graph.sim_weight, (graph.sim_a, graph.sim_b)), shape=(n, n))
        self.relations = {"out": out, "inc": out.T.tocsr(), "sim": sim}
        self.sizes = {name: sample_sizes(np.diff(m.indptr), min_neighbours, max_neighbours)
                      for name, m in self.relations.items()}

    def sample(self, rng: np.random.Generator | None) -> Neighbours:
        """A fresh draw; ``rng=None``: the deterministic sample (heaviest neighbours first), used
        for validation, the final embeddings and serving."""
        return Neighbours(**{name: self._sample(name, rng) for name in self.relations})

    def _sample(self, name: str, rng: np.random.Generator | None) -> np.ndarray:
        matrix, sizes = self.relations[name], self.sizes[name]
        out = np.full((self.n, self.width), self.n, dtype=np.int32)
        for node in np.flatnonzero(sizes):
            chosen = _weighted_pick(*_row(matrix, node), sizes[node], rng)
            out[node, : len(chosen)] = chosen
        return out


def _row(matrix: sp.csr_matrix, node: int) -> tuple[np.ndarray, np.ndarray]:
    start, end = matrix.indptr[node], matrix.indptr[node + 1]
    return matrix.indices[start:end], matrix.data[start:end]


def _weighted_pick(indices: np.ndarray, weights: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Up to ``size`` of ``indices`` without replacement, each drawn proportionally to its weight
    (``rng=None``: the ``size`` heaviest, ties by index)."""
    if len(indices) <= size:
        return indices
    if rng is None:
        return indices[np.lexsort((indices, -weights))[:size]]
    keys = np.log(rng.uniform(size=len(indices))) / np.maximum(weights, 1e-12)
    return indices[np.argpartition(-keys, size - 1)[:size]]
