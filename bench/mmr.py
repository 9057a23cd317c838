"""What MMR buys: intra-list diversity against blended score, over mmr_lambda, on a trained run.

    .venv/bin/python bench/mmr.py --run-dir runs/demo     # after `make demo`

For test users with their full seen lists (train + val), the in-process recommender (exact
retrieval) answers once per lambda; per list: intra-list diversity (mean pairwise 1 - cosine
of the candidate embeddings), mean blended score, distinct genres, and how many of the
user's held-out test items it holds. Writes bench/results/mmr.json and prints a table.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.io import atomic_write_json
from tfrs_app.retrieval.train import load_trained
from tfrs_app.serving.load import query_request
from tfrs_app.serving.recommender import RecommenderServer
from tfrs_app.stages import candidate_embeddings, held_out_users, recommender_server


def intra_list_diversity(rows: np.ndarray, vectors: dict) -> float:
    values = []
    for row in rows:
        v = np.stack([vectors[i.decode()] for i in row if i])
        n = len(v)
        values.append(1.0 - ((v @ v.T).sum() - n) / (n * (n - 1)))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", default="runs/demo")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1.0, 0.85, 0.7, 0.5])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "mmr.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    trained = load_trained(args.run_dir)
    server = recommender_server(args.run_dir, trained)
    embeddings, ids = candidate_embeddings(trained)
    vectors = dict(zip(ids, embeddings))
    genres = dict(zip(trained.catalog["item_id"], trained.catalog["item_genres"]))
    users = held_out_users(trained, args.users)
    request = query_request(users.user_ids, users.timestamps, users.histories, users.features)
    rows = []
    for lam in args.lambdas:
        variant = RecommenderServer.__new__(RecommenderServer)
        variant.__dict__.update(server.__dict__)
        variant.blend = replace(server.blend, mmr_lambda=lam)
        variant.serve = tf.function(variant._serve)
        out = {k: v.numpy() for k, v in variant.serve(request).items()}
        rows.append({
            "mmr_lambda": lam,
            "intra_list_diversity": intra_list_diversity(out["item_ids"], vectors),
            "mean_blended_score": float(out["score"][out["item_ids"] != b""].mean()),
            "distinct_genres": float(np.mean([len({g for i in row if i for g in genres[i.decode()].split("|")})
                                              for row in out["item_ids"]])),
            "test_hits_per_list": float(np.mean([sum(i.decode() in later for i in row)
                                                 for later, row in zip(users.test_items, out["item_ids"])])),
            "gated_per_request": float((out["candidate_status"] == b"responsibility").sum(axis=1).mean()),
            "seen_per_request": float((out["candidate_status"] == b"seen").sum(axis=1).mean()),
        })
    atomic_write_json(args.out, {"run_dir": args.run_dir, "users": len(users.user_ids), "rows": rows,
                                 "seconds": time.perf_counter() - started})
    print("| mmr_lambda | intra-list diversity | mean blended score | distinct genres | test hits per list |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mmr_lambda']} | {r['intra_list_diversity']:.3f} | {r['mean_blended_score']:.3f} | "
              f"{r['distinct_genres']:.2f} | {r['test_hits_per_list']:.2f} |")
    print(f"gated per request {rows[0]['gated_per_request']:.1f}, seen per request {rows[0]['seen_per_request']:.1f}")


if __name__ == "__main__":
    main()
