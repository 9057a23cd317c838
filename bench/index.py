"""Benchmark: ScaNN (``scann_params`` defaults) against exact brute force, both as TFRS layers.

For each catalog size N (default 10k, 100k, 1M candidates of 64 dims) it measures:

- build time of each index (``build_scann`` / ``build_brute_force``, tensor conversion included);
- recall@k of ScaNN against brute force on held-out queries;
- single-query latency, p50 and p99 over ``--single`` calls of a [1, 64] tensor through the layer
  (eager, after warm-up), which is what an online request pays;
- batched throughput (QPS): the held-out queries in batches of ``--batch`` (batched so that brute
  force's [batch, N] score matrix stays modest: 256 x 1M floats is 1 GiB);
- speed ratios brute/ScaNN for single-query p50 and for batched QPS;
- a sweep of num_leaves_to_search (default, 2x, 4x) with recall@k and single-query p50 each.

Both indexes are timed in the same run, on the same queries, back to back per size: absolute times
on shared, noisy machines drift from run to run, but the ratio of two measurements taken side by
side is far more stable, so the ratios are the numbers to compare across runs and machines.

Data. Isotropic Gaussians are the worst case for a partitioning index (no structure for k-means
to find; recall@10 was ~0.3-0.5 with default params), while trained embeddings are clustered and
low-rank. The generator, seeded by (seed, N) so every size is deterministic on its own:

- C = round(sqrt(N)) cluster centres in a 16-dim latent space, centres ~ N(0, I);
- mixture weights ~ Dirichlet(1) (uneven cluster sizes); per-cluster spread s_c ~ U(0.3, 0.7);
- a latent point is centre_c + s_c * N(0, I_16), mapped to 64 dims by a fixed random matrix with
  orthonormal columns, plus isotropic noise N(0, 0.1^2 I_64);
- rows are L2-normalised (the app's towers L2-normalise, so dot product = cosine).

Queries are fresh draws from the same mixture (own RNG stream), never candidates.

Run: python bench/index.py [--sizes 10000 100000 1000000] [--queries 1000] [--k 10] [--out PATH] [--quick]
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata as md
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tfrs_app  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfrs_app.io import atomic_write_json  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tfrs_app.retrieval.index import build_brute_force, build_scann, recall_against_exact, scann_params  # noqa: E402

LATENT, DIM, NOISE = 16, 64, 0.1
GEN = {"latent_dim": LATENT, "dim": DIM, "clusters": "round(sqrt(N))", "centres": "N(0, I)",
       "weights": "Dirichlet(1)", "cluster_spread": "U(0.3, 0.7)", "noise_std": NOISE, "l2_normalised": True}


def make_data(n: int, num_queries: int, seed: int, chunk: int = 100_000):
    """Candidates [n, 64] and held-out queries [num_queries, 64], float32, unit rows."""
    rng = np.random.default_rng([seed, n, 0])
    c = max(1, int(round(np.sqrt(n))))
    centres = rng.standard_normal((c, LATENT))
    weights = rng.dirichlet(np.ones(c))
    spread = rng.uniform(0.3, 0.7, c)
    proj = np.linalg.qr(rng.standard_normal((DIM, LATENT)))[0].T  # [16, 64], orthonormal rows

    def draw(r, m):
        cl = r.choice(c, size=m, p=weights)
        z = centres[cl] + spread[cl, None] * r.standard_normal((m, LATENT))
        x = z @ proj + NOISE * r.standard_normal((m, DIM))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    cand = np.empty((n, DIM), np.float32)
    for s in range(0, n, chunk):  # chunked: only the float32 result is ever full-size
        cand[s:s + chunk] = draw(rng, min(chunk, n - s))
    return cand, draw(np.random.default_rng([seed, n, 1]), num_queries)


def batched(layer, queries: np.ndarray, k: int, batch: int):
    """Ids [Q, k] and the wall time of searching ``queries`` in batches of ``batch``."""
    ids, total = [], 0.0
    for s in range(0, len(queries), batch):
        q = tf.constant(queries[s:s + batch])
        t = time.perf_counter()
        ids.append(layer(q, k=k)[1].numpy())  # timing includes materialising the result
        total += time.perf_counter() - t
    return np.concatenate(ids), total


def single_latency(layer, queries: np.ndarray, k: int, warmup: int, desc: str) -> dict:
    """p50/p99 ms of one [1, D] query at a time, after ``warmup`` untimed calls."""
    qs = [tf.constant(queries[i:i + 1]) for i in range(len(queries))]
    for q in qs[:warmup]:
        layer(q, k=k)[1].numpy()
    lat = []
    for q in tqdm(qs, desc=desc, leave=False):
        t = time.perf_counter()
        layer(q, k=k)[1].numpy()
        lat.append(1000 * (time.perf_counter() - t))
    p50, p99 = np.percentile(lat, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "mean_ms": float(np.mean(lat))}


def timed(fn):
    t = time.perf_counter()
    return fn(), time.perf_counter() - t


def bench_size(n: int, a) -> dict:
    cand, queries = make_data(n, a.queries, a.seed)
    ids = np.arange(n, dtype=np.int64)
    single_q = queries[:a.single]
    params = scann_params(n, a.k)
    print(f"\nN={n:,}: ScaNN params {params.to_dict()}", flush=True)

    brute, brute_build = timed(lambda: build_brute_force(cand, ids, a.k))
    batched(brute, queries[:a.batch], a.k, a.batch)  # warm-up
    exact, brute_batch_s = batched(brute, queries, a.k, a.batch)
    brute_single = single_latency(brute, single_q, a.k, a.warmup, f"brute single N={n}")

    scann, scann_build = timed(lambda: build_scann(cand, ids, a.k, params))
    batched(scann, queries[:a.batch], a.k, a.batch)  # warm-up
    approx, scann_batch_s = batched(scann, queries, a.k, a.batch)
    scann_single = single_latency(scann, single_q, a.k, a.warmup, f"scann single N={n}")
    recall = recall_against_exact(approx, exact)
    print(f"  build s scann {scann_build:.2f} brute {brute_build:.2f}; recall@{a.k} {recall:.4f}; "
          f"p50 ms scann {scann_single['p50_ms']:.3f} brute {brute_single['p50_ms']:.3f}", flush=True)

    sweep = []
    for mult in (1, 2, 4):
        p = scann_params(n, a.k, num_leaves_to_search=params.num_leaves_to_search * mult)
        if mult > 1 and p.num_leaves_to_search == sweep[-1]["num_leaves_to_search"]:
            continue  # capped at num_leaves
        layer, build_s = (scann, scann_build) if mult == 1 else timed(lambda: build_scann(cand, ids, a.k, p))
        got, _ = batched(layer, queries, a.k, a.batch)
        lat = scann_single if mult == 1 else single_latency(layer, single_q, a.k, a.warmup, f"sweep x{mult} N={n}")
        sweep.append({"num_leaves_to_search": p.num_leaves_to_search, f"recall@{a.k}": recall_against_exact(got, exact),
                      "single_p50_ms": lat["p50_ms"], "build_s": build_s})
        print(f"  sweep leaves_to_search={p.num_leaves_to_search}: recall {sweep[-1][f'recall@{a.k}']:.4f} "
              f"p50 {lat['p50_ms']:.3f} ms", flush=True)
        del layer
    del scann, brute
    gc.collect()
    nq = len(queries)
    return {
        "num_candidates": n, "dim": DIM, "k": a.k, "num_queries": nq, "batch_size": a.batch,
        "num_single_queries": len(single_q), "scann_params": params.to_dict(),
        "build_s": {"scann": scann_build, "brute_force": brute_build},
        f"recall@{a.k}": recall,
        "single_query": {"scann": scann_single, "brute_force": brute_single,
                         "p50_speedup_brute_over_scann": brute_single["p50_ms"] / scann_single["p50_ms"]},
        "batched": {"scann_qps": nq / scann_batch_s, "brute_force_qps": nq / brute_batch_s,
                    "qps_ratio_scann_over_brute": brute_batch_s / scann_batch_s},
        "sweep_num_leaves_to_search": sweep,
    }


def table(rows: list, k: int) -> str:
    out = [f"| N | build s ScaNN / brute | recall@{k} | p50 ms ScaNN / brute | speedup | QPS ScaNN / brute | QPS ratio |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, b = r["single_query"], r["batched"]
        out.append(f"| {r['num_candidates']:,} | {r['build_s']['scann']:.2f} / {r['build_s']['brute_force']:.2f} "
                   f"| {r[f'recall@{k}']:.3f} | {s['scann']['p50_ms']:.2f} / {s['brute_force']['p50_ms']:.2f} "
                   f"| {s['p50_speedup_brute_over_scann']:.1f}x | {b['scann_qps']:,.0f} / {b['brute_force_qps']:,.0f} "
                   f"| {b['qps_ratio_scann_over_brute']:.1f}x |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=1000, help="held-out queries for recall and QPS")
    ap.add_argument("--single", type=int, default=200, help="single queries timed for p50/p99")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256, help="batch size for QPS")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/index.json")
    ap.add_argument("--quick", action="store_true", help="sizes 10k and 100k, 200 queries, 50 single")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.queries, a.single, a.warmup = [10_000, 100_000], min(a.queries, 200), min(a.single, 50), 5
    a.single = min(a.single, a.queries)
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "scann": md.version("scann"),
                    "tensorflow_recommenders": md.version("tensorflow-recommenders"), "numpy": np.__version__,
                    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "args": vars(a), "generator": GEN, "complete": False, "sizes": [],
    }
    for n in a.sizes:
        result["sizes"].append(bench_size(n, a))
        atomic_write_json(a.out, result)  # partial results survive a crash at a later size
    result["complete"] = True
    atomic_write_json(a.out, result)
    print("\n" + table(result["sizes"], a.k) + "\n")
    for r in result["sizes"]:
        print(f"N={r['num_candidates']:,} sweep: " + ", ".join(
            f"{s['num_leaves_to_search']} leaves -> recall {s[f'recall@{a.k}']:.3f}, p50 {s['single_p50_ms']:.2f} ms"
            for s in r["sweep_num_leaves_to_search"]))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
