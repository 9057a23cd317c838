"""Benchmark: ``graph.cold_dropout`` chosen on validation, for warm and new items.

On the synthetic directed log (seed 0), 10% of the validation pairs' target items lose their
training events (so they are new at validation time: OOV id, no edges); the dual GNN is trained
with each ``--rates`` value (early stopping on the validation pairs) and its validation
HitRate@10 is reported on the pairs into those items (cold) and the rest (warm). Test is not read.

Run: python bench/cold_dropout.py [--rates 0 0.2] [--out bench/results/cold_dropout.json]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _shared import git_state  # noqa: E402

import numpy as np  # noqa: E402

from tfrs_app.config import load_config  # noqa: E402
from tfrs_app.io import atomic_write_json  # noqa: E402


def one_rate(rate: float, run_dir: Path, share: float = 0.1) -> dict:
    from tfrs_app.data.prepare import prepare_data
    from tfrs_app.graph import train
    from tfrs_app.graph.baselines import EmbeddingScorer
    from tfrs_app.graph.edges import held_out_pairs
    from tfrs_app.graph.evaluate import rank_metrics, target_ranks

    cfg = load_config(None, ["data.source=synthetic_directed", f"run_dir={run_dir}", f"graph.cold_dropout={rate}"])
    data, g = prepare_data(cfg), cfg.graph
    ids = data.catalog["item_id"].astype(str).to_numpy()
    val = held_out_pairs(data.splits.train, data.splits.val, ids, g.window_days, g.max_next)
    targets = np.unique(val["target"].to_numpy())
    cold_rows = np.random.default_rng(0).choice(targets, size=int(share * len(targets)), replace=False)
    train_events = data.splits.train[~data.splits.train["item_id"].astype(str).isin(set(ids[cold_rows]))]
    graph = train.graph_of(train_events, data.catalog, g)
    model = train.build_model(cfg, data, id_vocabulary=sorted(set(train_events["item_id"].astype(str))))
    fitted = train.fit(model, graph, g, cfg.seed, val)
    source, target = train.final_embeddings(model, graph, g)
    ranks = target_ranks(EmbeddingScorer(source, target, normalise=False), val["source"].to_numpy(),
                         val["target"].to_numpy())
    cold = np.isin(val["target"].to_numpy(), cold_rows)
    return {"cold_dropout": rate, "best_epoch": fitted["best_epoch"], "warm": rank_metrics(ranks[~cold], g.k),
            "cold": rank_metrics(ranks[cold], g.k), "all": rank_metrics(ranks, g.k)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.0, 0.2])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cold_dropout.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        rows = [one_rate(rate, Path(base) / f"r{rate}") for rate in args.rates]
    atomic_write_json(args.out, {"benchmark": "cold_dropout", "git": git_state(), "rows": rows})
    print("| cold_dropout | val HitRate@10 warm | cold | all | best epoch |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['cold_dropout']} | {r['warm']['hit_rate@10']:.4f} | {r['cold']['hit_rate@10']:.4f} | "
              f"{r['all']['hit_rate@10']:.4f} | {r['best_epoch']} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
