"""Benchmark: end-to-end recommender request latency at catalog sizes 10k, 100k and 1M.

One request is what ``RecommenderServer.serve`` does for one user, all in one graph: query
tower -> retrieve R = K + exclude_budget (100 + 100) -> drop seen -> ranker with MC dropout
(T = ``ranker.mc_samples``, 30) on the first K unseen -> responsibility gate -> blend -> MMR ->
top-10. For every catalog size N two servers are built over the same catalog, differing only
in the index: ``stock`` (exact ``BruteForce``: a [B, N] matmul and ``top_k``, stock TF ops) and
``scann`` (``scann_params(N, R)``: ~sqrt(N) leaves, max(10, 2%) searched, AH + reordering;
not tuned). Timed, per N and variant:

- ``e2e``: one user per call (p50, p99, mean ms) through ``server.serve`` (the tf.function,
  in process), every output fetched to numpy;
- ``e2e_batch``: ``--batch`` users per call -> requests/s (QPS) = batch / mean call time;
- ``retrieval``: the query tower + index only (``RetrievalServer`` over the same index layer,
  k = R), one user per call and a batch, so the share of a request spent ranking is visible;
- ``saved``: for N <= ``--saved-model-max`` (10k by default) the server exported with
  ``export.publish/save_server`` to a temporary dir, loaded back with ``load_saved_model``
  and its ``serving_default`` timed the same way; its outputs are compared with in-process.

The headline ratios are ScaNN against brute force in the same run: p50 speedup
(brute p50 / ScaNN p50) of one request and the QPS ratio of batches (ScaNN / brute); ratios
of measurements taken side by side are the numbers to compare across runs and machines.
Also recorded: ScaNN's recall@R against exact retrieval on the request pool, the overlap of
the two variants' final top-10, and what happened to the R retrieved items (seen, gated,...).

Catalog. The models are the demo run's (``pipelines/configs/demo.yaml``: 2,000 items),
trained in a temporary dir (about 2 minutes) unless ``--run-dir`` already holds a trained
retrieval model, ranker and thresholds. The N-item catalog is the 2,000 real items (their
ids, titles, genres, candidate embeddings, training counts) plus N - 2,000 synthetic ones:
row i is ``x{i}``, copying the title and genres of a random real item whose embedding,
plus N(0, ``--noise``^2) per dimension (0.05: cosine ~0.93 to the source, about the real
catalog's median nearest-neighbour cosine 0.89), L2-normalised, is its own; counts
Poisson(2). So the similarity structure is the trained one, and retrieval at 1M finds many
near-duplicates of the best real items (the ranker sees unknown ids ``x...`` as OOV).

Requests: real test users (``stages.example_queries``: the first test users as of the end of
train+val) whose history is full (``data.history_length``, 20 items); a single-user call
at round r uses user r mod pool, the same one for every variant in that round; a batch is
the first ``--batch`` users of the pool.

Timing: every server is first traced on its signature's input specs (batch and history dims
None: ``server.signatures()``, the graph a SavedModel holds), so every in-process call of any
batch size dispatches to that one trace. (Traced on a concrete batch of 32 instead, the ScaNN
server fails: ScaNN's rows have a None batch dimension, and ``retrieved[:, :, None] ==
history[:, None, :]`` in ``RecommenderServer._serve`` then has no static rank, which
``tf.boolean_mask`` rejects. A batch of 1 traces.) Every callable is called once,
``--warmup`` more times untimed, then all
variants of one N are timed round-robin in a freshly shuffled order each round, so drift
hits them alike. Reps per variant: at most ``--reps`` (single user) or ``--batch-reps``
(batches), at least ``--min-reps``, fewer when the warm-up estimate says it would exceed
``--budget`` seconds; the reps are recorded. Tracing counts are checked: a retrace during
timing would be timed as a slow call.

Run: python bench/serving.py [--sizes 10000 100000 1000000] [--reps 300] [--batch 32]
         [--run-dir DIR] [--out bench/results/serving.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata as md
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _shared import git_state, round_robin, warm_up  # noqa: E402

import tfrs_app  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfrs_app.config import load_config  # noqa: E402
from tfrs_app.io import atomic_write_json  # noqa: E402
from tfrs_app.retrieval.index import build_brute_force, build_scann, recall_against_exact, scann_params  # noqa: E402
from tfrs_app.serving.export import RetrievalServer, publish, save_server  # noqa: E402
from tfrs_app.serving.load import load_saved_model  # noqa: E402
from tfrs_app.serving.recommender import STATUSES, Blend, Catalog, RecommenderServer  # noqa: E402

VARIANTS = ("stock", "scann")


# ---------------------------------------------------------------------------------------------- provenance

def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "sched_affinity": len(os.sched_getaffinity(0)),
            "platform": platform.platform(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "tensorflow_recommenders": md.version("tensorflow-recommenders"), "scann": md.version("scann"),
            "numpy": np.__version__,
            "loadavg_note": "1/5/15-min load averages at start (before training) and end: other processes "
                            "share these cores",
            "tf_intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "tf_threads_note": "0 = TensorFlow's default (one per core)",
            "visible_gpus": len(tf.config.list_physical_devices("GPU"))}


# ---------------------------------------------------------------------------------------------- models

def prepare(args, tmp: Path) -> tuple[Path, dict]:
    """The run dir with a trained retrieval model, ranker and thresholds (trained here when missing)."""
    from tfrs_app.ranking import train as ranker_train
    from tfrs_app.ranking.calibrate import calibrate
    from tfrs_app.retrieval import train as retrieval_train

    run_dir = Path(args.run_dir) if args.run_dir else tmp / "run"
    info: dict = {"run_dir": str(run_dir), "trained_here": []}
    has = {"retrieval": (run_dir / "retrieval" / "checkpoint" / "towers.index").exists(),
           "ranker": (run_dir / "ranker" / "checkpoint" / "ranker.index").exists(),
           "thresholds": (run_dir / "ranker" / "thresholds").is_dir()}
    if all(has.values()):
        print(f"using the trained run {run_dir}", flush=True)
        return run_dir, info
    # the run's own config when it has one, else the demo's; a small bootstrap: calibrate's
    # report is not what is measured
    source = run_dir / "config.yaml" if (run_dir / "config.yaml").exists() else ROOT / "pipelines/configs/demo.yaml"
    cfg = load_config(source, [f"run_dir={run_dir}", f"ranker.num_bootstrap={args.num_bootstrap}"])
    info["config"] = str(source)
    for stage, step in (("retrieval", lambda: retrieval_train.run(cfg)), ("ranker", lambda: ranker_train.run(cfg)),
                        ("thresholds", lambda: calibrate(run_dir, cfg))):
        if has[stage]:
            continue
        print(f"training: {stage} in {run_dir}", flush=True)
        started = time.perf_counter()
        step()
        info[f"{stage}_s"] = time.perf_counter() - started
        info["trained_here"].append(stage)
    return run_dir, info


def load_models(run_dir: Path) -> dict:
    """What stages.recommender_server wires, loaded once and shared by every N."""
    from tfrs_app.ranking.calibrate import load_tables
    from tfrs_app.ranking.train import load_trained_ranker
    from tfrs_app.retrieval.train import load_trained
    from tfrs_app.stages import candidate_embeddings

    trained = load_trained(run_dir)
    ranker = load_trained_ranker(run_dir)
    embeddings, ids = candidate_embeddings(trained)
    rec = trained.cfg.recommender
    return {
        "trained": trained, "ranker": ranker, "tables": load_tables(run_dir),
        "embeddings": embeddings, "ids": ids, "titles": trained.catalog["item_title"].to_numpy(),
        "genres": trained.catalog["item_genres"].to_numpy(), "counts": trained.catalog_counts(),
        "blend": Blend(rec.engagement_weight, rec.satisfaction_weight, rec.std_penalty, rec.mmr_lambda,
                       rec.cold_popularity_weight),
        "rec": rec, "user_features": trained.model.query_tower.user_feature_names,
        "ranker_user_features": ranker.model.query_encoder.user_feature_names,
        "history_length": trained.cfg.data.history_length, "mc_samples": ranker.cfg.ranker.mc_samples,
        "seed": ranker.cfg.seed,
    }


def synthetic_catalog(m: dict, n: int, noise: float, seed: int) -> Catalog:
    """The real items, then n - len(real) noisy copies of random real items (see the module doc)."""
    real = len(m["ids"])
    if n < real:
        raise SystemExit(f"--sizes {n}: smaller than the real catalog ({real} items)")
    rng = np.random.default_rng([seed, n])
    src = rng.integers(0, real, size=n - real)
    emb = np.empty((n, m["embeddings"].shape[1]), np.float32)
    emb[:real] = m["embeddings"]
    chunk = 100_000
    for s in range(0, n - real, chunk):  # chunked: only the float32 result is ever full-size
        part = src[s:s + chunk]
        x = m["embeddings"][part] + noise * rng.standard_normal((len(part), emb.shape[1]), dtype=np.float32)
        emb[real + s: real + s + len(part)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.concatenate([m["ids"].astype(object), np.array([f"x{i}" for i in range(real, n)], dtype=object)])
    return Catalog(ids=ids, titles=np.concatenate([m["titles"], m["titles"][src]]),
                   genres=np.concatenate([m["genres"], m["genres"][src]]), embeddings=emb,
                   counts=np.concatenate([m["counts"], rng.poisson(2.0, size=n - real)]))


def make_server(m: dict, catalog: Catalog, index) -> RecommenderServer:
    rec = m["rec"]
    return RecommenderServer(m["trained"].model.query_tower, index, m["ranker"].model, m["tables"], catalog,
                             m["user_features"], m["ranker_user_features"], m["history_length"], rec.num_candidates,
                             rec.exclude_budget, rec.top_n, m["mc_samples"], m["seed"], m["blend"])


def user_pool(m: dict, size: int, batch: int) -> tuple[list[dict], dict, dict]:
    """([single-user request] * pool, batch request, description): test users with full histories."""
    from tfrs_app.stages import example_queries

    q = example_queries(m["trained"], num_users=max(8 * size, 400))
    filled = (q["history"] != "").sum(axis=1)
    full = np.flatnonzero(filled == m["history_length"])
    rows = full if len(full) >= max(size, batch) else np.argsort(-filled, kind="stable")  # fall back: longest
    rows = rows[:max(size, batch)]
    singles = [{k: tf.constant(v[r:r + 1]) for k, v in q.items()} for r in rows[:size]]
    batched = {k: tf.constant(v[rows[:batch]]) for k, v in q.items()}
    desc = {"pool_size": len(singles), "batch_size": batch, "candidates_with_full_history": int(len(full)),
            "history_width": int(q["history"].shape[1]), "history_items_mean": float(filled[rows].mean()),
            "inputs": sorted(q), "first_user": str(q["user_id"][rows[0]])}
    return singles, batched, desc


# ---------------------------------------------------------------------------------------------- timing

def measure(fns: dict, args) -> dict:
    """Round-robin timing of {name: {"call": f(rep), "batch": bool}}; returns {name: stats}."""
    calls = {name: v["call"] for name, v in fns.items()}
    estimate = warm_up(calls, args.warmup, indent="    ")
    reps = {name: max(args.min_reps, min(args.batch_reps if v["batch"] else args.reps,
                                         int(args.budget / max(estimate[name], 1e-9)))) for name, v in fns.items()}
    traces = {name: v["traces"]() for name, v in fns.items() if v.get("traces")}
    times = round_robin(calls, reps, args.seed)
    stats = {}
    for name, ms in times.items():
        ms = np.asarray(ms)
        p50, p99 = np.percentile(ms, [50, 99])
        stats[name] = {"p50_ms": float(p50), "p99_ms": float(p99), "mean_ms": float(ms.mean()),
                       "min_ms": float(ms.min()), "reps": int(ms.size), "warm_estimate_ms": 1000 * estimate[name]}
        if fns[name]["batch"]:
            stats[name]["qps"] = args.batch / (ms.mean() / 1000)
        if fns[name].get("traces"):
            retraced = fns[name]["traces"]() - traces[name]
            stats[name]["retraced_during_timing"] = int(retraced)
            stats[name]["traces_total"] = int(fns[name]["traces"]())
            if retraced:
                print(f"    warning: {name} retraced {retraced}x during timing", flush=True)
    return stats


# ---------------------------------------------------------------------------------------------- one size

def export_and_load(server: RecommenderServer, tmp: Path, name: str, scann: bool, meta: dict):
    started = time.perf_counter()
    path = publish(tmp / "saved_models" / name, lambda p: save_server(server, p, {**meta, "model": name}, scann))
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    signature = load_saved_model(path).signatures["serving_default"]
    return signature, {"path": str(path), "export_s": export_s, "load_s": time.perf_counter() - started,
                       "size_mb": sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2 ** 20}


def status_counts(out: dict) -> dict:
    status = out["candidate_status"].numpy()
    return {s: float((status == s.encode()).sum(axis=1).mean()) for s in STATUSES}


def bench_size(n: int, m: dict, singles: list, batch_req: dict, args, tmp: Path) -> dict:
    rec = m["rec"]
    retrieve = min(rec.num_candidates + rec.exclude_budget, n)
    params = scann_params(n, retrieve)
    print(f"\nN={n:,}: R={retrieve}, ScaNN params {params.to_dict()}", flush=True)
    started = time.perf_counter()
    catalog = synthetic_catalog(m, n, args.noise, args.seed)
    catalog_s = time.perf_counter() - started
    rows = np.arange(n, dtype=np.int64)
    build = {}
    started = time.perf_counter()
    indexes = {"stock": build_brute_force(catalog.embeddings, rows, retrieve)}
    build["stock"] = time.perf_counter() - started
    started = time.perf_counter()
    indexes["scann"] = build_scann(catalog.embeddings, rows, retrieve, params)
    build["scann"] = time.perf_counter() - started
    servers, retrievers = {}, {}
    started = time.perf_counter()
    for v in VARIANTS:
        servers[v] = make_server(m, catalog, indexes[v])
        retrievers[v] = RetrievalServer(m["trained"].model.query_tower, indexes[v], m["user_features"], retrieve)
    server_s = time.perf_counter() - started
    print(f"  catalog {catalog_s:.1f}s, index build s stock {build['stock']:.2f} scann {build['scann']:.2f}, "
          f"servers {server_s:.1f}s", flush=True)

    # Trace every server on its signature's specs (batch and history dims None) first: the graph
    # the SavedModel exports, and the one later calls of any shape dispatch to. Traced on concrete
    # shapes instead, the ScaNN server fails for a batch > 1 (RecommenderServer._serve; module doc).
    for server in (*servers.values(), *retrievers.values()):
        server.signatures()
    pool = len(singles)
    fns = {}
    for v in VARIANTS:
        serve, ret = servers[v].serve, retrievers[v].serve
        fns[f"e2e_{v}"] = {"call": lambda r, f=serve: f(singles[r % pool]), "batch": False,
                           "traces": serve.experimental_get_tracing_count}
        fns[f"e2e_batch_{v}"] = {"call": lambda r, f=serve: f(batch_req), "batch": True,
                                 "traces": serve.experimental_get_tracing_count}
        fns[f"retrieval_{v}"] = {"call": lambda r, f=ret: f(singles[r % pool]), "batch": False,
                                 "traces": ret.experimental_get_tracing_count}
        fns[f"retrieval_batch_{v}"] = {"call": lambda r, f=ret: f(batch_req), "batch": True,
                                       "traces": ret.experimental_get_tracing_count}

    saved_info, agreement_saved = {}, {}
    if n <= args.saved_model_max:
        meta = {"num_candidates": n, "retrieved": retrieve, "note": "bench/serving.py synthetic catalog"}
        for v in VARIANTS:
            signature, saved_info[v] = export_and_load(servers[v], tmp, f"recommender_{v}_{n}", v == "scann",
                                                       {**meta, "index": "scann" if v == "scann" else "brute_force"})
            print(f"  exported {v}: {saved_info[v]['export_s']:.1f}s, {saved_info[v]['size_mb']:.0f} MB, "
                  f"loaded {saved_info[v]['load_s']:.1f}s", flush=True)
            fns[f"saved_{v}"] = {"call": lambda r, f=signature: f(**singles[r % pool]), "batch": False}
            fns[f"saved_batch_{v}"] = {"call": lambda r, f=signature: f(**batch_req), "batch": True}
            a, b = servers[v].serve(batch_req), signature(**batch_req)
            agreement_saved[v] = {
                "item_ids_equal": bool(np.array_equal(a["item_ids"].numpy(), b["item_ids"].numpy())),
                "candidate_status_equal": bool(np.array_equal(a["candidate_status"].numpy(),
                                                              b["candidate_status"].numpy())),
                "max_abs_diff_score": float(np.max(np.abs(a["score"].numpy() - b["score"].numpy())))}

    print(f"  timing {len(fns)} callables round-robin", flush=True)
    stats = measure(fns, args)

    # ScaNN against exact on the batch users: retrieval recall@R, final top-10 overlap, statuses
    out = {v: servers[v].serve(batch_req) for v in VARIANTS}
    got = {v: retrievers[v].serve(batch_req)["item_ids"].numpy() for v in VARIANTS}
    top = {v: out[v]["item_ids"].numpy() for v in VARIANTS}
    overlap = [len(set(a[a != b""].tolist()) & set(b[b != b""].tolist())) / max(1, (b != b"").sum())
               for a, b in zip(top["scann"], top["stock"])]
    quality = {f"scann_recall@{retrieve}_vs_exact": recall_against_exact(got["scann"], got["stock"]),
               "top_n_overlap_scann_vs_stock": float(np.mean(overlap)),
               "num_results_mean": {v: float(out[v]["num_results"].numpy().mean()) for v in VARIANTS},
               "users_with_no_results": {v: int((out[v]["num_results"].numpy() == 0).sum()) for v in VARIANTS},
               "candidate_status_mean": {v: status_counts(out[v]) for v in VARIANTS},
               "synthetic_share_of_top_n": {v: float(np.char.startswith(top[v][top[v] != b""].astype(str), "x").mean())
                                            for v in VARIANTS}}

    variants = {}
    for v in VARIANTS:
        e2e, bat, ret, retb = (stats[f"{p}_{v}"] for p in ("e2e", "e2e_batch", "retrieval", "retrieval_batch"))
        variants[v] = {"e2e": e2e, "e2e_batch": bat, "retrieval": ret, "retrieval_batch": retb,
                       "index_build_s": build[v],
                       "retrieval_share_of_e2e_p50": ret["p50_ms"] / e2e["p50_ms"],
                       "e2e_minus_retrieval_p50_ms": e2e["p50_ms"] - ret["p50_ms"],
                       "retrieval_share_of_batch_mean": retb["mean_ms"] / bat["mean_ms"]}
        if f"saved_{v}" in stats:
            variants[v]["saved_model"] = {"single": stats[f"saved_{v}"], "batch": stats[f"saved_batch_{v}"],
                                          **saved_info[v], "agreement_with_in_process": agreement_saved[v],
                                          "p50_ratio_vs_in_process": stats[f"saved_{v}"]["p50_ms"] / e2e["p50_ms"]}
    s, b = variants["scann"], variants["stock"]
    ratios = {"e2e_p50_speedup_stock_over_scann": b["e2e"]["p50_ms"] / s["e2e"]["p50_ms"],
              "e2e_p99_speedup_stock_over_scann": b["e2e"]["p99_ms"] / s["e2e"]["p99_ms"],
              "e2e_qps_ratio_scann_over_stock": s["e2e_batch"]["qps"] / b["e2e_batch"]["qps"],
              "retrieval_p50_speedup_stock_over_scann": b["retrieval"]["p50_ms"] / s["retrieval"]["p50_ms"],
              "retrieval_qps_ratio_scann_over_stock": s["retrieval_batch"]["qps"] / b["retrieval_batch"]["qps"]}
    print(f"  e2e p50 ms stock {b['e2e']['p50_ms']:.2f} scann {s['e2e']['p50_ms']:.2f} "
          f"({ratios['e2e_p50_speedup_stock_over_scann']:.2f}x); retrieval-only p50 stock "
          f"{b['retrieval']['p50_ms']:.2f} scann {s['retrieval']['p50_ms']:.2f}; "
          f"recall@{retrieve} {quality[f'scann_recall@{retrieve}_vs_exact']:.3f}", flush=True)
    del servers, retrievers, indexes, catalog, fns, out
    gc.collect()
    return {"num_items": n, "num_real_items": int(len(m["ids"])), "retrieved": retrieve,
            "num_candidates": rec.num_candidates, "top_n": rec.top_n, "scann_params": params.to_dict(),
            "setup_s": {"catalog": catalog_s, "servers": server_s}, "variants": variants, "ratios": ratios,
            "quality": quality}


# ---------------------------------------------------------------------------------------------- report

def table(sizes: list, batch: int) -> str:
    lines = [f"| N | variant | e2e p50 ms | e2e p99 ms | e2e mean ms | reps | QPS @{batch} | retrieval-only p50 ms "
             f"| retrieval share of p50 | rest (ranking...) p50 ms | retrieval-only QPS @{batch} |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sizes:
        for v in VARIANTS:
            x = r["variants"][v]
            e = x["e2e"]
            lines.append(f"| {r['num_items']:,} | {v} | {e['p50_ms']:.2f} | {e['p99_ms']:.2f} | {e['mean_ms']:.2f} "
                         f"| {e['reps']} | {x['e2e_batch']['qps']:,.0f} | {x['retrieval']['p50_ms']:.2f} "
                         f"| {x['retrieval_share_of_e2e_p50']:.0%} | {x['e2e_minus_retrieval_p50_ms']:.2f} "
                         f"| {x['retrieval_batch']['qps']:,.0f} |")
    return "\n".join(lines)


def ratio_table(sizes: list) -> str:
    lines = ["| N | e2e p50 speedup stock/ScaNN | e2e p99 speedup | e2e QPS ratio ScaNN/stock "
             "| retrieval-only p50 speedup | retrieval-only QPS ratio | ScaNN recall@R | top-10 overlap |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sizes:
        x, q = r["ratios"], r["quality"]
        recall = q[f"scann_recall@{r['retrieved']}_vs_exact"]
        lines.append(f"| {r['num_items']:,} | {x['e2e_p50_speedup_stock_over_scann']:.2f}x "
                     f"| {x['e2e_p99_speedup_stock_over_scann']:.2f}x | {x['e2e_qps_ratio_scann_over_stock']:.2f}x "
                     f"| {x['retrieval_p50_speedup_stock_over_scann']:.2f}x "
                     f"| {x['retrieval_qps_ratio_scann_over_stock']:.2f}x "
                     f"| {recall:.3f} "
                     f"| {q['top_n_overlap_scann_vs_stock']:.2f} |")
    return "\n".join(lines)


def saved_table(sizes: list, batch: int) -> str:
    lines = [f"| N | variant | in-process p50 ms | SavedModel p50 ms | ratio | SavedModel QPS @{batch} "
             "| same top-10 | max abs score diff | export s | MB |",
             "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in sizes:
        for v in VARIANTS:
            x = r["variants"][v]
            if "saved_model" not in x:
                continue
            s = x["saved_model"]
            lines.append(f"| {r['num_items']:,} | {v} | {x['e2e']['p50_ms']:.2f} | {s['single']['p50_ms']:.2f} "
                         f"| {s['p50_ratio_vs_in_process']:.2f}x | {s['batch']['qps']:,.0f} "
                         f"| {s['agreement_with_in_process']['item_ids_equal']} "
                         f"| {s['agreement_with_in_process']['max_abs_diff_score']:.1e} | {s['export_s']:.1f} "
                         f"| {s['size_mb']:.0f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--run-dir", default=None, help="run dir with trained retrieval, ranker and thresholds (what is "
                                                    "missing is trained there; default: a temporary dir)")
    ap.add_argument("--reps", type=int, default=300, help="timed single-user calls per variant (at most)")
    ap.add_argument("--batch", type=int, default=32, help="users per call for QPS")
    ap.add_argument("--batch-reps", type=int, default=60, help="timed batch calls per variant (at most)")
    ap.add_argument("--min-reps", type=int, default=20, help="timed calls per variant (at least)")
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of timed calls per variant, roughly")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls after the tracing one")
    ap.add_argument("--users", type=int, default=64, help="pool of single-user requests (test users, full history)")
    ap.add_argument("--noise", type=float, default=0.05, help="per-dimension noise of the synthetic embeddings")
    ap.add_argument("--saved-model-max", type=int, default=10_000,
                    help="export and time the SavedModel for N up to this (0: never)")
    ap.add_argument("--num-bootstrap", type=int, default=50, help="ranker.num_bootstrap when calibrating here")
    ap.add_argument("--seed", type=int, default=0, help="synthetic catalog and round-robin order")
    ap.add_argument("--out", default=str(ROOT / "bench/results/serving.json"))
    args = ap.parse_args(argv)
    started = time.perf_counter()
    git_start, load_start = git_state(), list(os.getloadavg())  # before training: what is measured, and the load

    tmp = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    run_dir, info = prepare(args, tmp)
    m = load_models(run_dir)
    singles, batch_req, desc = user_pool(m, args.users, args.batch)
    info.update(mc_samples=m["mc_samples"], seed=m["seed"], history_length=m["history_length"],
                num_real_items=int(len(m["ids"])), embedding_dim=int(m["embeddings"].shape[1]),
                recommender=m["trained"].cfg.to_dict()["recommender"], user_features=list(m["user_features"]))
    print(f"{len(m['ids'])} real items, pool of {desc['pool_size']} users "
          f"(history {desc['history_items_mean']:.1f} items), batch {args.batch}", flush=True)
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "loadavg_start": load_start},
        "command": " ".join([Path(sys.executable).name] + sys.argv), "git": git_start,
        "args": vars(args), "model": info, "requests": desc,
        "catalog": {"real_items": int(len(m["ids"])), "synthetic_ids": "x{row}", "noise_std": args.noise,
                    "synthetic_counts": "Poisson(2)",
                    "synthetic_embedding": "real[src] + N(0, noise^2 I), L2-normalised; title/genres of src"},
        "notes": ["servers are traced on their signature specs (None batch/history dims) before timing; in-process "
                  "calls of every batch size run that trace, as the SavedModel does",
                  "RecommenderServer with a ScaNN index cannot trace a concrete batch > 1 (boolean_mask: mask of "
                  "unknown rank), hence the signature trace first"],
        "complete": False, "sizes": [],
    }
    for n in args.sizes:
        result["sizes"].append(bench_size(n, m, singles, batch_req, args, tmp))
        result["wall_seconds"] = time.perf_counter() - started
        atomic_write_json(args.out, result)  # partial results survive a crash at a later size
    result["complete"] = True
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    git_end = git_state()
    if git_end["state"] != git_start["state"]:  # the package changed on disk during the run
        result["git_end"] = git_end
    result["wall_seconds"] = time.perf_counter() - started
    atomic_write_json(args.out, result)
    print("\n" + table(result["sizes"], args.batch) + "\n")
    print(ratio_table(result["sizes"]) + "\n")
    saved = saved_table(result["sizes"], args.batch)
    if saved:
        print(saved + "\n")
    for r in result["sizes"]:
        q = r["quality"]
        print(f"N={r['num_items']:,}: per request (stock) " + ", ".join(
            f"{k} {v:.1f}" for k, v in q["candidate_status_mean"]["stock"].items()) +
            f"; synthetic share of top-{r['top_n']} stock {q['synthetic_share_of_top_n']['stock']:.0%}; users with no "
            f"results (of {args.batch}) stock {q['users_with_no_results']['stock']}, "
            f"scann {q['users_with_no_results']['scann']}")
    print(f"cpu_count {os.cpu_count()}, tf intra/inter threads {result['machine']['tf_intra_op_parallelism_threads']}/"
          f"{result['machine']['tf_inter_op_parallelism_threads']} (0 = default)")
    print(f"\nwrote {args.out} ({result['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
