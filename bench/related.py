"""Benchmark: related items on held-out later "consumed after" pairs, every model on the same pairs.

Protocol (``tfrs_app/graph/train.py``): time split 80/10/10 of the log; the GNNs train on the
directed edges of the training events and stop early on validation HitRate@10; test pairs are
(A, B) with B's event in the test period and A an earlier event of the same user within
``graph.window_days`` (7), scored over the whole catalog (A itself excluded) with the graph of
train + validation. Models:

- ``dual_gnn``: dual source/target embeddings (DAEMON/BLADE), the default;
- ``symmetric_gnn``: the same GNN with one embedding per item (score symmetric);
- ``cooccurrence``: P(B after A) from the known events' counts (no threshold);
- ``candidate_tower``: cosine of the retrieval candidate tower (the run's default retrieval
  model, trained on the same split first; ``--no-retrieval`` skips it).

Reported per model: HitRate@10, MRR@10; the asymmetry check on one-way pairs (share where B
ranks above A given A than A given B; on the synthetic log also on the planted successor pairs);
cold start: 10% of the test pairs' target items have their events removed from train and
validation (so they are not in the graph and their ids are the OOV row: metadata only; their
title words stay in the vocabulary, fitted on the catalog's text), the GNNs are retrained,
and the pairs into them are scored (``--cold-share``; the candidate tower, trained with them,
is left out of that table); training seconds.

Data: the synthetic directed log (``data.source=synthetic_directed``, planted ground truth)
and ml-latest-small (from ``../shared/data``: "rated after" edges; rating order within a
session is arbitrary, so direction carries little signal there).

Run: python bench/related.py [--datasets synthetic_directed movielens/latest-small] [--seeds 0]
     [--no-retrieval] [--out bench/results/related.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _shared import git_state  # noqa: E402

import numpy as np  # noqa: E402

from tfrs_app.config import load_config  # noqa: E402
from tfrs_app.io import atomic_write_json  # noqa: E402

MOVIELENS = ROOT.parent / "shared" / "data" / "ml-latest-small"
MODELS = ("dual_gnn", "symmetric_gnn", "cooccurrence", "candidate_tower")


def dataset_overrides(dataset: str) -> list[str]:
    if dataset.startswith("movielens/"):
        return [f"data.source={dataset}", f"data.manual_dir={MOVIELENS}", f"data.data_dir={ROOT / '.cache' / 'tfds'}",
                "retrieval.batch_size=1024"]
    return [f"data.source={dataset}"]


def one_run(dataset: str, seed: int, base: Path, retrieval: bool, cold_share: float) -> dict:
    from tfrs_app.data.prepare import RunData, prepare_data
    from tfrs_app.data.splits import Splits
    from tfrs_app.graph.train import candidate_vectors, train_and_evaluate

    run_dir = base / f"{dataset.replace('/', '-')}-s{seed}"
    cfg = load_config(None, [*dataset_overrides(dataset), f"seed={seed}", f"data.seed={seed}",
                             f"data.directed.seed={seed}", f"run_dir={run_dir}"])
    result = {"dataset": dataset, "seed": seed}
    if retrieval:
        from tfrs_app.retrieval.train import run as train_retrieval

        started = time.perf_counter()
        train_retrieval(cfg)
        result["retrieval_seconds"] = time.perf_counter() - started
    data = prepare_data(cfg)
    candidate = candidate_vectors(run_dir, data.catalog)
    models, report = train_and_evaluate(cfg, data, symmetric_baseline=True, candidate=candidate)
    trained = models["dual"]
    result.update(report=report, events=data.splits.sizes())
    if dataset == "synthetic_directed":  # the planted successor pairs among the test pairs
        result["planted"] = planted_asymmetry(cfg, models, data)

    # cold start: hold a share of the test pairs' target items out of training and the graph
    from tfrs_app.graph.edges import held_out_pairs

    g = cfg.graph
    pairs = held_out_pairs(data.splits.known(), data.splits.test, trained.graph.item_ids, g.window_days, g.max_next)
    targets = np.unique(pairs["target"].to_numpy())
    rng = np.random.default_rng(seed)
    cold = set(trained.graph.item_ids[rng.choice(targets, size=max(1, int(cold_share * len(targets))), replace=False)])
    keep = lambda frame: frame[~frame["item_id"].astype(str).isin(cold)]  # noqa: E731
    held = RunData(Splits(keep(data.splits.train), keep(data.splits.val), data.splits.test), data.catalog, data.space)
    # no candidate tower here: it was trained on the full splits, cold items included
    _, cold_report = train_and_evaluate(cfg, held, symmetric_baseline=True)
    result["cold"] = {"items": len(cold), "models": {name: m["cold_targets"] for name, m in
                                                    cold_report["test"]["models"].items()}}
    return result


def planted_asymmetry(cfg, models, data) -> dict:
    """The asymmetry check on the held-out pairs that are planted successor edges, for both GNNs."""
    from tfrs_app.graph.edges import held_out_pairs
    from tfrs_app.graph.evaluate import asymmetry
    from tfrs_app.graph.synthetic import generate_directed

    g, ids = cfg.graph, models["dual"].graph.item_ids
    truth = generate_directed(cfg.data.directed).truth
    pairs = held_out_pairs(data.splits.known(), data.splits.test, ids, g.window_days, g.max_next)
    planted = pairs[[(ids[a], ids[b]) in truth.successors for a, b in zip(pairs["source"], pairs["target"])]]
    planted = planted.drop_duplicates(["source", "target"])
    return {"pairs": int(len(planted)), **{f"{name}_gnn": asymmetry(m.scorer(), planted) for name, m in models.items()}}


def summarise(runs: list[dict]) -> dict:
    table = {}
    for dataset in sorted({r["dataset"] for r in runs}):
        mine = [r for r in runs if r["dataset"] == dataset]
        rows = {}
        for model in MODELS:
            got = [r["report"]["test"]["models"][model] for r in mine if model in r["report"]["test"]["models"]]
            if not got:
                continue
            k = next(key for key in got[0] if key.startswith("hit_rate@")).split("@")[1]
            value = lambda f: (float(np.mean([f(m) for m in got])), float(np.std([f(m) for m in got])))  # noqa: E731
            cold = [r["cold"]["models"][model] for r in mine if model in r["cold"]["models"]]
            rows[model] = {"hit_rate": value(lambda m: m[f"hit_rate@{k}"]), "mrr": value(lambda m: m[f"mrr@{k}"]),
                           "forward_wins": value(lambda m: m["asymmetry"]["forward_wins"]),
                           "cold_hit_rate": (float(np.mean([c[f"hit_rate@{k}"] for c in cold])), 0.0) if cold else None,
                           "eval_seconds": value(lambda m: m["seconds"])}
        seconds = {"dual_gnn": float(np.mean([r["report"]["training"]["seconds"] for r in mine])),
                   "symmetric_gnn": float(np.mean([r["report"]["symmetric_training"]["seconds"] for r in mine]))}
        if all("retrieval_seconds" in r for r in mine):
            seconds["candidate_tower"] = float(np.mean([r["retrieval_seconds"] for r in mine]))
        table[dataset] = {"k": int(k), "models": rows, "train_seconds": seconds, "seeds": len(mine),
                          "pairs": int(np.mean([r["report"]["test"]["pairs"] for r in mine])),
                          "planted_forward_wins": {name: [r["planted"][name]["forward_wins"] for r in mine]
                                                   for name in ("dual_gnn", "symmetric_gnn") if "planted" in mine[0]}}
        sym = rows["symmetric_gnn"]["hit_rate"][0]
        table[dataset]["dual_over_symmetric_hit_rate"] = rows["dual_gnn"]["hit_rate"][0] / sym if sym else None
    return table


def format_table(summary: dict) -> str:
    lines = []
    for dataset, s in summary.items():
        k = s["k"]
        lines.append(f"\n{dataset}: {s['pairs']} test pairs; dual / symmetric HitRate@{k} = "
                     f"{s['dual_over_symmetric_hit_rate']:.2f}x"
                     + ("; planted base->accessory pairs, forward wins: " + ", ".join(
                         f"{name} {np.mean(v):.3f}" for name, v in s["planted_forward_wins"].items())
                        if s["planted_forward_wins"] else ""))
        lines.append(f"| model | HitRate@{k} | MRR@{k} | forward wins (one-way) | cold-target HitRate@{k} | train s |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for model in [name for name in MODELS if name in s["models"]]:
            m = s["models"][model]
            cold = "-" if m["cold_hit_rate"] is None else f"{m['cold_hit_rate'][0]:.4f}"
            train = s["train_seconds"].get(model)
            spread = lambda v: f"{v[0]:.4f}" + (f" ± {v[1]:.4f}" if s["seeds"] > 1 else "")  # noqa: E731
            lines.append(f"| {model} | {spread(m['hit_rate'])} | {spread(m['mrr'])} | {m['forward_wins'][0]:.3f} | "
                         f"{cold} | {'-' if train is None else f'{train:.0f}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic_directed", "movielens/latest-small"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--no-retrieval", action="store_true", help="skip the candidate-tower baseline")
    parser.add_argument("--cold-share", type=float, default=0.1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "related.json"))
    parser.add_argument("--tabulate", help="print the table of an earlier result JSON and exit")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("tfrs_app.graph").setLevel(logging.INFO)
    if args.tabulate:
        print(format_table(json.loads(Path(args.tabulate).read_text())["summary"]))
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as base:
        runs = [one_run(d, s, Path(base), not args.no_retrieval, args.cold_share) for d in args.datasets
                for s in args.seeds]
    summary = summarise(runs)
    result = {"benchmark": "related", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "git": git_state(), "machine": {"platform": platform.platform(), "python": platform.python_version()},
              "args": vars(args), "seconds": time.perf_counter() - started, "summary": summary, "runs": runs,
              "graph_config": dataclasses.asdict(load_config(None).graph)}
    atomic_write_json(args.out, result)
    print(format_table(summary))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
