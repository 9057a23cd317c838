"""Benchmark: the WatchNext term in the recommender's blend, on the synthetic directed log.

The term (``serving/recommender.py`` step 5): ``watchnext_weight * P(engage) * watchnext[item]``
where ``watchnext`` is the item's normalised expected follow-on consumption
(``graph/watchnext.py``: follow-on events within ``graph.window_days`` per occurrence, shrunk to
the catalog mean, / its 99th percentile). The question: does ranking by P(engage) x what the
item leads to buy more follow-on consumption, and at what cost in hits?

Data: ``data.source=synthetic_directed`` (``graph/synthetic.py``, the ``DirectedSyntheticConfig``
defaults, recorded in the result's ``data``: product lines of base items and levels of
accessories above them; journeys base -> accessory -> ..., each step taken with
``continue_probability``; base items also bought on their own), time split 80/10/10.
One run dir: retrieval (``retrieval.train.run``), the ranker (``ranking.train.run``,
``--ranker-epochs``, MC dropout cut to ``--mc-samples``), calibrated thresholds
(``ranking.calibrate.calibrate``), and the WatchNext values of the known (train + val) events
(``build_graph`` with the ``graph.*`` defaults -> ``watchnext_values`` -> ``save_watchnext``;
not the ``train-graph`` stage). Only ``recommender.watchnext_weight`` differs between the rows:
the same models, the same thresholds, the same requests.

This log labels engagement only (every event is a positive; sampled negatives are the 0s), so
the ranker trains the engagement head alone (``ranker.loss_weights.satisfaction=0``,
``responsibility=0``), the blend is ``recommender.engagement_weight=1``,
``satisfaction_weight=0``, and the two unlabelled heads, which calibration leaves without a
table, get pass-through tables (one bucket, threshold 0: the responsibility gate keeps
everything). Everything else is the default (``num_candidates`` 100, ``mmr_lambda`` 0.7, top-10).

Requests: every test user the retrieval model knows (``stages.held_out_users``), at its first
test event, with its full train + val history (all of it excluded). Per weight, over the
top-10 lists:

- ``hit_rate``: recommended items the user consumes in the test period / recommended items
  (precision@10); ``users_with_a_hit``: the share of users with at least one;
- ``follow_on_per_hit``: for each hit (user u consumed recommended item i at t in test), the
  number of u's test events in (t, t + ``graph.window_days``], averaged over the hits
  (censored at the end of the log alike for every weight);
- ``follow_on_per_user``: the same follow-on events summed over a user's hits, averaged over
  users: hits x follow-on, the total value the term is meant to raise;
- ``base_share``: recommended items at level 0 (the bases, which lead to accessories);
  ``mean_watchnext`` and ``mean_p_engage`` of the recommended items;
- ``overlap_with_weight_0``: mean share of a user's list that is also in its weight-0 list.

Every seed of ``--seeds`` is a new log (``data.directed.seed``) and new models (``seed``); the
table shows mean ± std over seeds and the paired change from weight 0 (Δ, same seed). The
models' test quality is recorded beside it (retrieval recall@100, ranker engagement AUC): with
``--ranker-epochs 2`` the ranker's test AUC was about 0.50 on an earlier version of this log
(3 levels of 8 items), P(engage) then nearly flat and the term a plain WatchNext prior, hence
6 by default.

Run: python bench/watchnext.py [--weights 0 0.5 1.0] [--seeds 0 1 2] [--retrieval-epochs 5] [--ranker-epochs 6]
         [--mc-samples 2] [--out bench/results/watchnext.json]
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

DAY = 86_400


def train(run_dir: Path, args, seed: int) -> tuple:
    """(cfg, TrainedRetrieval, TrainedRanker, seconds per stage) of one run dir with every piece."""
    from tfrs_app.decision.thresholds import ThresholdTable
    from tfrs_app.graph.edges import build_graph
    from tfrs_app.graph.watchnext import save_watchnext, watchnext_values
    from tfrs_app.ranking.calibrate import calibrate
    from tfrs_app.ranking.train import load_trained_ranker, run as train_ranker
    from tfrs_app.retrieval.train import load_trained, run as train_retrieval

    cfg = load_config(None, ["data.source=synthetic_directed", f"run_dir={run_dir}", f"seed={seed}",
                             f"data.directed.seed={seed}", f"retrieval.epochs={args.retrieval_epochs}",
                             f"ranker.epochs={args.ranker_epochs}", f"ranker.mc_samples={args.mc_samples}",
                             "ranker.num_bootstrap=200", f"export.base_dir={run_dir / 'saved_models'}",
                             "ranker.loss_weights.satisfaction=0", "ranker.loss_weights.responsibility=0",
                             "recommender.engagement_weight=1", "recommender.satisfaction_weight=0"])
    seconds = {}
    started = time.perf_counter()
    retrieval_metrics = train_retrieval(cfg)
    seconds["retrieval"] = time.perf_counter() - started
    started = time.perf_counter()
    ranker_metrics = train_ranker(cfg)
    seconds["ranker"] = time.perf_counter() - started
    quality = {"retrieval_test": retrieval_metrics["test"]["model"],
               "retrieval_epochs": (retrieval_metrics.get("early_stopping") or {}).get("best_epoch"),
               "ranker_test_engagement": ranker_metrics["test"]["engagement"]["model"],
               "ranker_test_engagement_item_prior": ranker_metrics["test"]["engagement"]["item_prior"]}
    started = time.perf_counter()
    calibrate(run_dir, cfg)
    for head in ("satisfaction", "responsibility"):  # no labels in this log: no calibrated table
        path = run_dir / "ranker" / "thresholds" / f"{head}.json"
        if not path.exists():
            ThresholdTable(head, "global", 0.5, (), (0.0,), (0,), (0,)).save(path)
    seconds["calibrate"] = time.perf_counter() - started
    trained = load_trained(run_dir)
    started = time.perf_counter()
    g = cfg.graph
    graph = build_graph(trained.splits.known(), trained.catalog, g.window_days, g.min_count, g.max_next,
                        g.coview_minutes, g.content_top_k)
    save_watchnext(watchnext_values(graph), run_dir / "graph")
    seconds["watchnext"] = time.perf_counter() - started
    return cfg, trained, load_trained_ranker(run_dir), seconds, quality


def recommend(server, users, batch: int = 256) -> tuple[list, list]:
    """([top-N item ids per user], [their engagement means]) from the in-process server's
    serving signature (one trace for every batch and history length)."""
    from tfrs_app.serving.load import query_request

    signature = server.signatures()["serving_default"]
    features = [n for n in server.input_specs if n.startswith("user_") and n != "user_id"]
    lists, engage = [], []
    for start in range(0, len(users.user_ids), batch):
        stop = start + batch
        out = signature(**query_request(users.user_ids[start:stop], users.timestamps[start:stop],
                                        users.histories[start:stop],
                                        {n: users.features[n][start:stop] for n in features}))
        ids, means = out["item_ids"].numpy(), out["engagement_mean"].numpy()
        for row, mean in zip(ids, means):
            keep = row != b""
            lists.append([i.decode() for i in row[keep]])
            engage.append(mean[keep])
    return lists, engage


def measure(lists, engage, users, test, window_s: float, watchnext: dict, level: dict, reference=None) -> dict:
    """The metrics of one weight's lists (see the module docstring)."""
    by_user = {u: (frame["item_id"].to_numpy().astype(str), frame["timestamp"].to_numpy(np.int64))
               for u, frame in test.groupby("user_id")}
    recommended = hits = users_hit = 0
    follow_ons, per_user, overlap = [], [], []
    for b, (user, items) in enumerate(zip(users.user_ids, lists)):
        test_items, times = by_user.get(user, (np.zeros(0, str), np.zeros(0, np.int64)))
        first = {}
        for item, t in zip(test_items, times):
            first.setdefault(item, t)
        recommended += len(items)
        user_total = 0
        user_hits = [i for i in items if i in first]
        for item in user_hits:
            t = first[item]
            count = int(((times > t) & (times <= t + window_s)).sum())
            follow_ons.append(count)
            user_total += count
        hits += len(user_hits)
        users_hit += bool(user_hits)
        per_user.append(user_total)
        if reference is not None:
            overlap.append(len(set(items) & set(reference[b])) / max(len(items), 1))
    flat = [i for items in lists for i in items]
    return {
        "users": len(lists), "recommended": recommended, "hits": hits,
        "hit_rate": hits / max(recommended, 1), "users_with_a_hit": users_hit / max(len(lists), 1),
        "follow_on_per_hit": float(np.mean(follow_ons)) if follow_ons else 0.0,
        "follow_on_per_user": float(np.mean(per_user)) if per_user else 0.0,
        "base_share": float(np.mean([level[i] == 0 for i in flat])) if flat else 0.0,
        "mean_watchnext": float(np.mean([watchnext[i] for i in flat])) if flat else 0.0,
        "mean_p_engage": float(np.mean(np.concatenate(engage))) if flat else 0.0,
        "overlap_with_weight_0": float(np.mean(overlap)) if overlap else 1.0,
    }


METRICS = ("hit_rate", "users_with_a_hit", "follow_on_per_hit", "follow_on_per_user", "base_share",
           "mean_watchnext", "mean_p_engage", "overlap_with_weight_0")


def one_seed(seed: int, args) -> dict:
    """Trains one run dir (log and model seed ``seed``) and measures every weight on it."""
    from tfrs_app.graph.synthetic import generate_directed
    from tfrs_app.graph.watchnext import load_watchnext
    from tfrs_app.stages import held_out_users, recommender_server

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfrs-watchnext-") as tmp:
        run_dir = Path(tmp)
        cfg, trained, ranker, seconds, quality = train(run_dir, args, seed)
        truth = generate_directed(cfg.data.directed).truth
        level = dict(zip(truth.item_ids.astype(str), truth.level.tolist()))
        ids = trained.catalog["item_id"].astype(str).to_numpy()
        watchnext = dict(zip(ids, load_watchnext(run_dir, ids).tolist()))
        test = trained.splits.test
        window_s = cfg.graph.window_days * DAY
        rows, reference = {}, None
        for weight in sorted(args.weights):
            rec = dataclasses.replace(cfg.recommender, watchnext_weight=weight)
            variant = dataclasses.replace(trained, cfg=dataclasses.replace(trained.cfg, recommender=rec))
            server = recommender_server(run_dir, variant, ranker=ranker)
            assert server.blend.watchnext_weight == weight
            features = [n for n in server.input_specs if n.startswith("user_") and n != "user_id"]
            users = held_out_users(trained, args.max_users, features)
            t0 = time.perf_counter()
            lists, engage = recommend(server, users)
            row = measure(lists, engage, users, test, window_s, watchnext, level, reference)
            row["serve_seconds"] = time.perf_counter() - t0
            rows[str(weight)] = row
            reference = lists if weight == 0.0 else reference
            print(f"seed {seed} watchnext_weight {weight}: hit rate {row['hit_rate']:.4f}, follow-on per hit "
                  f"{row['follow_on_per_hit']:.3f}, per user {row['follow_on_per_user']:.4f}", flush=True)
        test_follow = []
        for _, frame in test.groupby("user_id"):
            times = np.sort(frame["timestamp"].to_numpy(np.int64))
            test_follow += [int(((times > t) & (times <= t + window_s)).sum()) for t in times]
        wn = np.array(list(watchnext.values()))
        levels = np.array([level[i] for i in watchnext])
        return {
            "seed": seed, "cfg": cfg,
            "data": {"events": int(len(trained.splits.train) + len(trained.splits.val) + len(test)),
                     "test_events": int(len(test)), "items": int(len(ids))},
            "models": quality,
            "reference": {"follow_on_per_test_event": float(np.mean(test_follow)) if test_follow else 0.0,
                          "mean_watchnext_by_level": {str(int(l)): float(wn[levels == l].mean())
                                                      for l in np.unique(levels)}},
            "seconds": {**seconds, "total": time.perf_counter() - started},
            "weights": rows,
        }


def stat(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def summarize(runs: list[dict]) -> dict:
    """{weight: {metric: mean/std over seeds, "delta_<metric>": the paired change from weight 0}}."""
    summary = {}
    for weight in runs[0]["weights"]:
        rows = [r["weights"][weight] for r in runs]
        base = [r["weights"]["0.0"] for r in runs]
        summary[weight] = {m: stat([row[m] for row in rows]) for m in METRICS}
        summary[weight].update({f"delta_{m}": stat([row[m] - b[m] for row, b in zip(rows, base)])
                                for m in ("hit_rate", "follow_on_per_hit", "follow_on_per_user")})
        summary[weight]["users"] = [row["users"] for row in rows]
        summary[weight]["hits"] = [row["hits"] for row in rows]
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--retrieval-epochs", type=int, default=5)
    parser.add_argument("--ranker-epochs", type=int, default=6)  # 2: test AUC ~0.50, P(engage) flat
    parser.add_argument("--mc-samples", type=int, default=2)
    parser.add_argument("--max-users", type=int, default=100_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "watchnext.json"))
    parser.add_argument("--tabulate", metavar="JSON", help="print the table of an earlier result and exit")
    args = parser.parse_args(argv)
    if args.tabulate:
        print(format_table(json.loads(Path(args.tabulate).read_text())))
        return 0
    if 0.0 not in args.weights:
        parser.error("--weights must include 0 (the baseline every row is compared with)")

    started = time.perf_counter()
    runs = [one_seed(seed, args) for seed in args.seeds]
    cfg = runs[0].pop("cfg")
    for r in runs[1:]:
        r.pop("cfg")
    result = {
        "benchmark": "watchnext", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(), "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "data": {"source": "synthetic_directed", **{k: v for k, v in dataclasses.asdict(cfg.data.directed).items()
                                                    if k != "seed"}, "seed": "= --seeds"},
        "settings": {"seeds": args.seeds, "retrieval_epochs": args.retrieval_epochs,
                     "ranker_epochs": args.ranker_epochs, "mc_samples": args.mc_samples,
                     "window_days": cfg.graph.window_days, "top_n": cfg.recommender.top_n,
                     "num_candidates": cfg.recommender.num_candidates, "mmr_lambda": cfg.recommender.mmr_lambda,
                     "engagement_weight": cfg.recommender.engagement_weight,
                     "satisfaction_weight": cfg.recommender.satisfaction_weight},
        "summary": summarize(runs), "runs": runs, "seconds": time.perf_counter() - started,
    }
    atomic_write_json(args.out, result)
    print(format_table(result))
    print(f"wrote {args.out}")
    return 0


def format_table(result: dict) -> str:
    runs = result["runs"]

    def cell(s, digits=4, sign=False):
        return f"{s['mean']:{'+' if sign else ''}.{digits}f} ± {s['std']:.{digits}f}"

    levels = {l: np.mean([r["reference"]["mean_watchnext_by_level"][l] for r in runs])
              for l in runs[0]["reference"]["mean_watchnext_by_level"]}
    lines = [f"WatchNext term on synthetic_directed: {np.mean([r['data']['events'] for r in runs]):.0f} events, "
             f"{runs[0]['data']['items']} items, {np.mean(next(iter(result['summary'].values()))['users']):.0f} test "
             f"users, top-{result['settings']['top_n']}, seeds {result['settings']['seeds']} (mean ± std over seeds); "
             f"follow-on per test event "
             f"{np.mean([r['reference']['follow_on_per_test_event'] for r in runs]):.3f}; mean WatchNext by level "
             + ", ".join(f"L{l} {v:.2f}" for l, v in levels.items()),
             "models: " + "; ".join(f"seed {r['seed']}: retrieval test recall@100 "
                                    f"{r['models']['retrieval_test'].get('recall@100', float('nan')):.3f}, ranker test "
                                    f"engagement AUC {r['models']['ranker_test_engagement']['auc']:.3f} (item prior "
                                    f"{r['models']['ranker_test_engagement_item_prior']['auc']:.3f})" for r in runs),
             "| watchnext_weight | hit rate | Δ hit rate | users with a hit | follow-on per hit | Δ follow-on per hit "
             "| follow-on per user | Δ follow-on per user | base share | mean WatchNext | overlap with w=0 |",
             "|---" * 11 + "|"]
    for weight, s in result["summary"].items():
        lines.append(f"| {weight} | {cell(s['hit_rate'])} | {cell(s['delta_hit_rate'], 4, True)} | "
                     f"{cell(s['users_with_a_hit'], 3)} | {cell(s['follow_on_per_hit'], 3)} | "
                     f"{cell(s['delta_follow_on_per_hit'], 3, True)} | {cell(s['follow_on_per_user'])} | "
                     f"{cell(s['delta_follow_on_per_user'], 4, True)} | {cell(s['base_share'], 3)} | "
                     f"{cell(s['mean_watchnext'], 3)} | {cell(s['overlap_with_weight_0'], 3)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
