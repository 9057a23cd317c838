"""tfrs-app: train, index, rank, calibrate, export and serve a two-stage TFRS recommender.

Stages (each reads and writes one run directory; see README):

    tfrs-app validate             [--config FILE] [--set key=value ...]   check a log, train nothing
    tfrs-app train-retrieval      [--config FILE] [--set key=value ...]
    tfrs-app build-index          --run-dir DIR
    tfrs-app train-ranker         [--config FILE] [--set key=value ...]
    tfrs-app calibrate-thresholds --run-dir DIR [--set ranker.threshold_policy=mist ...]
    tfrs-app train-graph          [--config FILE] [--set key=value ...]   related items (directed item graph)
    tfrs-app train-sessions       [--config FILE] [--set key=value ...]   GRU4Rec session recommendations
    tfrs-app export               --run-dir DIR [--base-dir saved_models]
    tfrs-app recommend            --user ID [--history ITEM ...] [--feature user_x=v ...] [--json]
                                  [--model saved_models/recommender]
    tfrs-app recommend            --session ID [ID ...] [--k K] [--json] [--model saved_models/session_recommender]
    tfrs-app related              --item ID [--item ID ...] [--k K] [--json] [--model saved_models/related_items]
    tfrs-app inspect              PATH (a version, a model base path, or saved_models/)
    tfrs-app report               RUN_DIR (writes RUN_DIR/report.html and report.md)
    tfrs-app tune                 --stage retrieval|ranker [--tuner random|hyperband|bayesian] [--max-trials N]
    tfrs-app demo                 [--dataset synthetic|movielens/<variant>] [--config FILE] [--set ...]

Config values come from the dataclass defaults, then --config, then --set overrides
(--set retrieval.epochs=3); the resolved config is written into the run directory. A config
error is reported before TensorFlow is imported and before the run directory is created.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence


from tfrs_app import __version__
from tfrs_app.config import ConfigError, load_config
from tfrs_app.data.schema import SchemaError
from tfrs_app.distribute import STRATEGIES
from tfrs_app.serving.errors import ExportError, ModelLoadError
from tfrs_app.tuning import TUNERS

log = logging.getLogger("tfrs_app")

EXAMPLES = """examples:
  tfrs-app demo                                   # synthetic data, end to end (what `make demo` runs)
  tfrs-app validate --config my_log.yaml          # check a CSV/Parquet log against the schema
  tfrs-app train-retrieval --config pipelines/configs/movielens.yaml --set retrieval.epochs=3
  tfrs-app train-ranker --run-dir runs/demo
  tfrs-app calibrate-thresholds --run-dir runs/demo
  tfrs-app export --run-dir runs/demo
  tfrs-app recommend --user 42 --history 318 296 --model saved_models/recommender
  tfrs-app related --item i12 --item i40 --model saved_models/related_items
  tfrs-app train-sessions --config pipelines/configs/sessions.yaml
  tfrs-app recommend --session i3 i17 i5 --model saved_models/sessions/session_recommender
  tfrs-app inspect saved_models

run `tfrs-app <command> --help` for a command's options."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    try:
        return args.func(args) or 0
    except (ConfigError, SchemaError, FileNotFoundError, ValueError, ModelLoadError, ExportError) as error:
        print(f"tfrs-app {args.command}: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfrs-app", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tfrs-app {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, details: str = "", example: str = "") -> argparse.ArgumentParser:
        text = summary + (f"\n\n{details}" if details else "")
        return sub.add_parser(name, help=summary, description=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=f"example:\n  {example}" if example else None)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="YAML config (see pipelines/configs/); default: the built-in defaults")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set retrieval.epochs=3 (repeatable)")
        p.add_argument("--run-dir", help="run directory for every artifact of this run (default: the config's run_dir)")
        p.add_argument("--strategy", choices=STRATEGIES,
                       help="tf.distribute strategy (multi_worker reads TF_CONFIG); default: the config's")

    p = command("validate", "check an interaction log against the schema, without training",
                "Reads data.* as training would and prints row counts, the detected delimiter and timestamp unit,\n"
                "duplicates, the id type, label coverage per ranker head and every problem found (file, column,\n"
                "row). Exit status 0 when the log can train, 1 when it has problems.",
                "tfrs-app validate --set data.source=csv --set data.path=log.tsv --set data.columns.item_id=sku")
    with_config(p)
    p.set_defaults(func=_validate)

    p = command("train-retrieval", "train and evaluate the two-tower model (and the baselines)",
                "Writes <run_dir>/retrieval/ (checkpoint, metrics.json) and prepares <run_dir>/data/.",
                "tfrs-app train-retrieval --config pipelines/configs/movielens.yaml")
    with_config(p)
    p.set_defaults(func=_train)

    p = command("build-index", "build the ScaNN index of a trained run and measure its recall against exact",
                example="tfrs-app build-index --run-dir runs/demo")
    p.add_argument("--run-dir", required=True, help="a run directory with a trained retrieval model")
    p.set_defaults(func=_index)

    p = command("train-ranker", "train the multi-head ranker and predict val/test with MC dropout",
                example="tfrs-app train-ranker --run-dir runs/demo")
    with_config(p)
    p.set_defaults(func=_train_ranker)

    p = command("train-graph", "build the directed item graph and train the dual-embedding GNN (related items)",
                "Writes <run_dir>/graph/ (graph, checkpoint, embeddings, WatchNext values, report.json) and prints\n"
                "test HitRate/MRR of the GNN and the baselines on later \"consumed after\" pairs.",
                "tfrs-app train-graph --config pipelines/configs/graph.yaml")
    with_config(p)
    p.set_defaults(func=_train_graph)

    p = command("train-sessions", "train GRU4Rec on the log's sessions and compare it with the session baselines",
                "Writes <run_dir>/sessions/ (checkpoint, vocabulary, report.json) and prints test Recall/MRR of\n"
                "GRU4Rec, popularity and session-kNN on every next event of the held-out sessions.",
                "tfrs-app train-sessions --config pipelines/configs/sessions.yaml")
    with_config(p)
    p.set_defaults(func=_train_sessions)

    p = command("calibrate-thresholds", "fit per-uncertainty-bucket thresholds on validation, report them on test",
                example="tfrs-app calibrate-thresholds --run-dir runs/demo --set ranker.threshold_policy=mist")
    p.add_argument("--run-dir", required=True, help="a run directory with a trained ranker")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a ranker.* value of the run's config (e.g. ranker.num_buckets=3)")
    p.set_defaults(func=_calibrate)

    p = command("export", "export TF-Serving SavedModels of a trained run (one new version per model)",
                example="tfrs-app export --run-dir runs/demo --base-dir saved_models")
    p.add_argument("--run-dir", required=True, help="a run directory with trained models")
    p.add_argument("--base-dir", help="where model base paths go (default: the config's export.base_dir)")
    p.set_defaults(func=_export)

    p = command("recommend", "final top-N for a user (recommender), or the next items of a session (session model)",
                "--user: the recommender SavedModel; unknown users are served by the cold-start path, or by the\n"
                "session model on their --history when its export sits beside the recommender; --history items are\n"
                "excluded from the list.\n"
                "--session: the session model (GRU4Rec) on the given items, oldest first; items it does not know are\n"
                "skipped, the session's own items are never listed, and a session with no known item gets the most\n"
                "popular items (the fallback). Give --user or --session, not both.",
                "tfrs-app recommend --user 42 --history 318 296 --model saved_models/recommender")
    p.add_argument("--user", help="user id (unknown users are served by the cold-start path)")
    p.add_argument("--session", nargs="+", metavar="ID",
                   help="the session's item ids, oldest first: answered by the session model instead of --user")
    p.add_argument("--k", type=int, help="with --session: how many items to show (default: the model's export k)")
    p.add_argument("--history", nargs="*", default=[], metavar="ITEM",
                   help="items the user has seen, most recent first (excluded; the first ones drive the query)")
    p.add_argument("--timestamp", type=int, help="Unix seconds of the request (default: now; a time after the "
                   "training data is read as its last moment; milliseconds are refused)")
    p.add_argument("--feature", action="append", default=[], metavar="USER_F=VALUE", help="a user feature")
    p.add_argument("--model", help="recommender (--user; default saved_models/recommender) or session_recommender "
                   "(--session; default saved_models/session_recommender) base path or version folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_recommend)

    p = command("related", "items related to one item or a basket, from an exported related_items SavedModel",
                "Scores every catalog item against the mean of the inputs' source embeddings (the graph stage's\n"
                "dual GNN: what tends to come after them); the inputs themselves are never listed. An id that is not\n"
                "in the catalog is reported and ignored; when no input is known, the most-followed items are shown.",
                "tfrs-app related --item i12 --item i40 --model saved_models/related_items")
    p.add_argument("--item", action="append", required=True, metavar="ID",
                   help="a catalog item id; repeat for a basket (e.g. --item i12 --item i40)")
    p.add_argument("--model", default="saved_models/related_items",
                   help="related_items (or related_items_scann) base path or version folder")
    p.add_argument("--title", action="append", metavar="TEXT",
                   help="the title of each --item, in order (\"\" for none): an id not in the catalog is then "
                        "embedded from its title and genres (cold start)")
    p.add_argument("--genres", action="append", metavar="A|B", help="the genres of each --item, in order, as --title")
    p.add_argument("--k", type=int, help="how many items to show (default: all the model returns, its export k)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_related)

    p = command("tune", "keras-tuner search on validation data; writes the best config as YAML",
                example="tfrs-app tune --stage retrieval --tuner bayesian --max-trials 20")
    with_config(p)
    p.add_argument("--stage", choices=("retrieval", "ranker"), required=True,
                   help="which model's hyperparameters to search (objective: its validation metric)")
    p.add_argument("--tuner", choices=TUNERS, default="random", help="keras-tuner search algorithm (default: random)")
    p.add_argument("--max-trials", type=int, default=10, help="configurations to try (default: 10)")
    p.add_argument("--epochs", type=int, help="epochs per trial (hyperband: the most any trial gets)")
    p.add_argument("--directory", help="search state, resumable (default: <run_dir>/tune-<stage>)")
    p.add_argument("--output", help="where the best config goes (default: <directory>/best.yaml)")
    p.set_defaults(func=_tune)

    p = command("report", "one HTML (and Markdown) page with every stage's metrics and plots",
                example="tfrs-app report runs/demo")
    p.add_argument("run_dir", help="a run directory (e.g. runs/demo)")
    p.set_defaults(func=_report)

    p = command("inspect", "versions, health, metadata and signatures of exported SavedModels",
                example="tfrs-app inspect saved_models")
    p.add_argument("path", help="a version folder, a model base path, or a folder of models (saved_models)")
    p.set_defaults(func=_inspect)

    p = command("demo", "train -> index -> rank -> calibrate -> export -> recommendations, in one go",
                example="tfrs-app demo --dataset movielens/latest-small --manual-dir ../shared/data/ml-latest-small")
    with_config(p)
    p.add_argument("--dataset", default="synthetic", help="synthetic or movielens/<variant>")
    p.add_argument("--manual-dir", help="folder with the MovieLens zip, for offline tfds")
    p.add_argument("--data-dir", help="tfds data_dir")
    p.set_defaults(func=_demo)
    return parser


def _validate(args: argparse.Namespace) -> int:
    from tfrs_app.data.validate import check_source, format_validation

    result = check_source(_config(args))
    print(format_validation(result))
    return 0 if result.ok else 1


def _config(args: argparse.Namespace, extra: Sequence[str] = ()):
    overrides = list(extra) + list(args.set)
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    if getattr(args, "strategy", None):
        overrides.append(f"strategy={args.strategy}")
    return load_config(args.config, overrides)


def _train(args: argparse.Namespace) -> None:
    cfg = _config(args)  # first: a config error is reported before TensorFlow is imported
    from tfrs_app.retrieval.train import run

    metrics = run(cfg)
    print(format_metrics(metrics))
    print(f"run directory: {cfg.run_dir}")


def _train_ranker(args: argparse.Namespace) -> None:
    cfg = _config(args)
    from tfrs_app.ranking.train import run

    print(format_ranker_metrics(run(cfg)))
    print(f"run directory: {cfg.run_dir}")


def _train_graph(args: argparse.Namespace) -> None:
    cfg = _config(args)
    from tfrs_app.graph.train import format_graph_report, run

    print(format_graph_report(run(cfg)))
    print(f"run directory: {cfg.run_dir}")


def _train_sessions(args: argparse.Namespace) -> None:
    cfg = _config(args)
    from tfrs_app.sequences.train import format_sessions_report, run

    print(format_sessions_report(run(cfg)))
    print(f"run directory: {cfg.run_dir}")


def _calibrate(args: argparse.Namespace) -> None:
    from tfrs_app.evaluation.report import format_threshold_report
    from tfrs_app.ranking.calibrate import calibrate

    config = Path(args.run_dir) / "ranker" / "config.yaml"
    if not config.exists():
        raise FileNotFoundError(f"{args.run_dir}: no trained ranker here (run `tfrs-app train-ranker` first)")
    outside = [item for item in args.set if not item.startswith("ranker.")]
    if outside:
        raise ValueError(f"--set {outside[0]!r}: calibrate-thresholds takes ranker.* values only (the model is trained)")
    cfg = load_config(config, args.set)
    reports = calibrate(args.run_dir, cfg)
    print("\n\n".join(format_threshold_report(report) for report in reports.values()))
    print(f"\nthresholds: {Path(args.run_dir) / 'ranker' / 'thresholds'}; plots: {Path(args.run_dir) / 'ranker' / 'plots'}")


def _recommend(args: argparse.Namespace) -> None:
    import json

    from tfrs_app.serving.recommender import Recommender, format_recommendation

    if (args.user is None) == (args.session is None):
        raise ValueError("give --user ID (the recommender) or --session ID [ID ...] (the session model), "
                         + ("not both" if args.user is not None else "one of them"))
    if args.session is not None:
        _recommend_session(args)
        return
    if args.k is not None:
        raise ValueError("--k: only with --session (the recommender's list length is its export's top_n)")
    features = {}
    for item in args.feature:
        if "=" not in item:
            raise ValueError(f"--feature {item!r}: expected user_<name>=value")
        key, value = item.split("=", 1)
        features[key] = value
    recommender = Recommender.load(args.model or "saved_models/recommender")
    result = recommender.recommend(args.user, args.history, args.timestamp, features)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_recommendation(result))


def _recommend_session(args: argparse.Namespace) -> None:
    """``recommend --session``: the session model's next items, or a named error."""
    import json

    from tfrs_app.serving.sessions import SessionRecommendations, format_sessions

    given = [name for name, value in (("history", args.history), ("feature", args.feature),
                                      ("timestamp", args.timestamp)) if value not in (None, [])]
    if given:
        raise ValueError(f"--{given[0]}: only with --user; with --session the items are the session")
    if args.k is not None and args.k < 1:
        raise ValueError(f"--k: must be >= 1, got {args.k}")
    result = SessionRecommendations.load(args.model or "saved_models/session_recommender").recommend(args.session, args.k)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_sessions(result))


def _related(args: argparse.Namespace) -> None:
    import json

    from tfrs_app.serving.related import RelatedItems, format_related

    if args.k is not None and args.k < 1:
        raise ValueError(f"--k: must be >= 1, got {args.k}")
    for name in ("title", "genres"):
        given = getattr(args, name)
        if given is not None and len(given) != len(args.item):
            raise ValueError(f"--{name}: give one per --item ({len(args.item)}), in order, \"\" for none; got {len(given)}")
    result = RelatedItems.load(args.model).related_batch(
        [args.item], args.k, None if args.title is None else [args.title], None if args.genres is None else [args.genres])[0]
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_related(result))


def _tune(args: argparse.Namespace) -> None:
    cfg = _config(args)
    from tfrs_app.tuning import tune

    path, best = tune(cfg, args.stage, args.tuner, args.max_trials, args.directory, args.output, args.epochs)
    print(f"best of {best['trials']} trials: objective {best['score']:.4f} with {best['values']}")
    print(f"best config: {path} (train with: tfrs-app train-{args.stage} --config {path})")


def _report(args: argparse.Namespace) -> None:
    from tfrs_app.run_report import write_report

    page, markdown = write_report(args.run_dir)
    print(f"wrote {page} and {markdown}")


def _inspect(args: argparse.Namespace) -> None:
    from tfrs_app.serving.tf_serving import describe

    print(describe(args.path))


def _index(args: argparse.Namespace) -> None:
    from tfrs_app.stages import build_index

    report = build_index(args.run_dir)
    print(format_index(report))


def _export(args: argparse.Namespace) -> None:
    from tfrs_app.stages import export

    for name, path in export(args.run_dir, base_dir=args.base_dir).items():
        print(f"{name:16s} {path}")


def _demo(args: argparse.Namespace) -> None:
    extra = [f"data.source={args.dataset}"]
    if args.dataset != "synthetic":  # its own run and model base paths, so versions of different data never mix
        slug = args.dataset.replace("/", "-")
        extra += [f"run_dir=runs/{slug}", f"export.base_dir=saved_models/{slug}"]
    if args.manual_dir:
        extra.append(f"data.manual_dir={args.manual_dir}")
    if args.data_dir:
        extra.append(f"data.data_dir={args.data_dir}")
    cfg = _config(args, extra)
    from tfrs_app.evaluation.report import format_threshold_summary
    from tfrs_app.ranking.calibrate import calibrate
    from tfrs_app.ranking.train import run as train_ranker
    from tfrs_app.retrieval.train import load_trained, run
    from tfrs_app.stages import build_index, export

    started = time.perf_counter()
    metrics = run(cfg)
    print(format_metrics(metrics))
    trained = load_trained(cfg.run_dir)
    print(format_index(build_index(cfg.run_dir, trained)))
    print(format_ranker_metrics(train_ranker(cfg)))
    reports = calibrate(cfg.run_dir, cfg)
    print("\nper-uncertainty-bucket thresholds, fitted on val and measured on test at each head's decision target "
          f"(full report: {Path(cfg.run_dir) / 'ranker' / 'report.md'}):")
    print(format_threshold_summary(reports, {h: cfg.ranker.decision_target(h) for h in reports}))
    paths = export(cfg.run_dir, trained)
    for name, path in paths.items():
        print(f"exported {name:16s} {path}")
    print(show_recommendations(trained, paths))
    print(f"demo finished in {time.perf_counter() - started:.0f}s; run directory: {cfg.run_dir}")


def format_metrics(metrics: dict) -> str:
    """Test (and val) metrics of the towers and every baseline as a Markdown table."""
    ks = sorted({int(k.split("@")[1]) for k in metrics["test"]["model"] if k.startswith("recall@")})
    names = ([f"top_{k}_accuracy" for k in ks] + [f"top_{ks[-1]}_accuracy_excl"]
             + [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")] + ["mrr"])
    lines = ["| split | model | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for split_name in ("val", "test"):
        for model, row in metrics.get(split_name, {}).items():
            lines.append(f"| {split_name} | {model} | " + " | ".join(f"{row.get(n, float('nan')):.4f}" for n in names) + " |")
    stopped = metrics.get("early_stopping")
    stop = f", best epoch {stopped['best_epoch']} of {len(stopped['history'])} (val {stopped['monitor']})" if stopped else ""
    chosen = ", ".join(f"{b} {r['params']}" for b, r in metrics.get("baselines", {}).items() if r["params"])
    lines.append(f"training: {metrics['train_seconds']:.0f}s{stop}, splits {metrics['splits']}, {metrics['num_items']} items"
                 + (f"; baselines tuned on val: {chosen}" if chosen else ""))
    return "\n".join(lines)


def format_ranker_metrics(metrics: dict) -> str:
    """Per head and split: the ranker (deterministic) against the item-prior baseline."""
    lines = ["| split | head | n | base rate | AUC | item-prior AUC | PR-AUC | log loss | ECE |", "|---" * 9 + "|"]
    for split_name in ("val", "test"):
        for head, row in metrics.get(split_name, {}).items():
            m, prior = row["model"], row["item_prior"]
            lines.append(f"| {split_name} | {head} | {m['n']} | {m['base_rate']:.3f} | {m['auc']:.4f} | "
                         f"{prior['auc']:.4f} | {m['pr_auc']:.4f} | {m['log_loss']:.4f} | {m['ece']:.4f} |")
    lines.append(f"ranker training: {metrics['train_seconds']:.0f}s on {metrics['num_train_examples']} examples")
    feedback = metrics.get("feedback", {})
    if feedback.get("applied"):
        q = feedback["weight"]["quantiles"]
        lines.append(f"delayed feedback ({feedback['method']}, cut-off {feedback['cutoff']}): observed positive rate "
                     f"{feedback['observed_positive_rate']:.4f} -> trained {feedback['trained_positive_rate']:.4f}; "
                     f"{100 * feedback['pending_at_cutoff']:.1f}% of the log's positives pending at the cut-off; "
                     f"engagement weights mean {feedback['weight']['mean']:.3f}, p5/p50/p95 {q['p5']:.3f}/"
                     f"{q['p50']:.3f}/{q['p95']:.3f}, {100 * feedback['weight']['zero_share']:.1f}% zero"
                     + (f"; observed negatives' flip probability p50/p95 {flip['p50']:.3f}/{flip['p95']:.3f}"
                        if (flip := feedback.get("flip_probability_of_negatives")) else "")
                     + (f"; intercept shift {feedback['intercept_shift']:+.3f}" if "intercept_shift" in feedback else ""))
    return "\n".join(lines)


def format_index(report: dict) -> str:
    p = report["params"]
    recall = [k for k in report if k.startswith("recall@")][0]
    return (f"ScaNN index: {report['num_candidates']} candidates x {report['dimensions']} dims, "
            f"{p['num_leaves']} leaves, {p['num_leaves_to_search']} searched, reorder {p['num_reordering_candidates']}: "
            f"{recall} vs exact = {report[recall]:.3f} on {report['num_queries']} held-out queries")


def show_recommendations(trained, paths: dict, num_users: int = 2) -> str:
    """Final top-N for ``num_users`` test users and one unknown user, from the exported
    recommender SavedModel (exact retrieval), with how far the ScaNN exports agree."""
    from tfrs_app.serving.load import load_saved_model, query_request
    from tfrs_app.serving.recommender import Recommender, format_recommendation
    from tfrs_app.stages import held_out_users

    held = held_out_users(trained, num_users)
    users = held.user_ids + ["a-brand-new-user"]
    times = held.timestamps + [int(trained.splits.test["timestamp"].max())]
    histories = held.histories + [[]]
    features = {name: values + [""] for name, values in held.features.items()}
    later = held.test_items + [set()]

    request = query_request(users, times, [h[: trained.cfg.data.history_length] for h in histories], features)
    stock = load_saved_model(paths["retrieval"]).signatures["serving_default"](**request)["item_ids"].numpy()
    scann = load_saved_model(paths["retrieval_scann"]).signatures["serving_default"](**request)["item_ids"].numpy()
    final = Recommender.load(paths["recommender"]).recommend_batch(users, histories, times, features)
    final_scann = Recommender.load(paths["recommender_scann"]).recommend_batch(users, histories, times, features)
    out = []
    for row, user in enumerate(users):
        rec, other = final[row], final_scann[row]
        hits = sum(item.item_id in later[row] for item in rec.items)
        out.append(f"\nretrieval top-10: ScaNN export agrees with exact on {len(set(stock[row]) & set(scann[row]))}/10; "
                   f"final list: recommender_scann agrees on "
                   f"{len({i.item_id for i in rec.items} & {i.item_id for i in other.items})}/{len(rec.items)}; "
                   f"{hits} of the final items are in the user's test events")
        out.append(format_recommendation(rec))
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
