"""Benchmark: session and sequence recommendations, every model on the same cases of one split.

Cells (dataset / protocol, ``tfrs_app/sequences/train.py``):

- ``synthetic_sequential/session``: the synthetic log with a planted hidden Markov chain over
  item clusters (``data.source=synthetic_sequential``); the sessions starting in the last 7 days
  are test, the 7 days before validation, items unseen in training dropped from them. Every next
  event of a test session is a case: Recall@20 and MRR@20 over the catalog, the session's
  items excluded. GRU4Rec trains on the training sessions.
- ``movielens/leave_last_out``: ml-latest-small (``../shared/data``), each user's last rating is
  test and the one before validation; the user's whole earlier sequence is the input: HitRate@10,
  nDCG@10, MRR, seen items excluded (the retrieval benchmark's protocol and code). GRU4Rec
  trains on each user's training history as one sequence (``sessions.sequence=user``).
- ``synthetic_sequential/leave_last_out`` (``--cells``): the same on the planted log's users.

Models: ``popularity`` and ``session_knn`` (SKNN, Jannach & Ludewig 2017: cosine over the 500
most recent sessions sharing an item, 100 neighbours), fitted on the training sequences;
``gru4rec_<loss>`` for each loss (the config defaults otherwise; the final activation per loss:
linear for cross-entropy (with logQ 1) and BPR, tanh for TOP1, elu-1 for BPR-max, linear for
TOP1-max); the two-tower retrieval model with the history in its query tower, encoded by
``mean`` (``tower_mean``, the mean-pooling tower), ``gru`` or ``transformer``
(``retrieval.use_history=true``, ``history_dropout=0``; early stopping on the same validation
metric as GRU4Rec, ``sequences/compare.py``'s NextItemEarlyStopping, best epoch restored, no refit,
as GRU4Rec). The towers' query for a case: user, timestamp, the session so far then
the user's earlier events (``sequences/compare.py``). Training seconds per epoch and events/s
beside each. Validation picks the GRU4Rec loss reported as ``best_gru4rec``; test is read once.

Run: python bench/sessions.py [--cells synthetic_sequential/session movielens/leave_last_out]
     [--losses bpr-max top1-max cross-entropy bpr top1] [--encoders mean gru transformer]
     [--out bench/results/sessions.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _shared import git_state  # noqa: E402

import tfrs_app  # noqa: E402,F401
from tfrs_app.config import load_config  # noqa: E402
from tfrs_app.io import atomic_write_json  # noqa: E402

MOVIELENS = ROOT.parent / "shared" / "data" / "ml-latest-small"
CELLS = ("synthetic_sequential/session", "movielens/leave_last_out", "synthetic_sequential/leave_last_out")
LOSSES = ("bpr-max", "top1-max", "cross-entropy", "bpr", "top1")
LOSS_SETTINGS = {"cross-entropy": ["sessions.final_activation=linear", "sessions.logq=1.0"],
                 "bpr": ["sessions.final_activation=linear"], "top1": ["sessions.final_activation=tanh"],
                 "bpr-max": ["sessions.final_activation=elu-1"], "top1-max": ["sessions.final_activation=linear"]}
ENCODERS = ("mean", "gru", "transformer")


def cell_overrides(cell: str) -> list[str]:
    dataset, protocol = cell.split("/", 1)
    if dataset == "movielens":
        data = ["data.source=movielens/latest-small", f"data.manual_dir={MOVIELENS}",
                f"data.data_dir={ROOT / '.cache' / 'tfds'}", "retrieval.batch_size=1024"]
    else:
        data = [f"data.source={dataset}"]
    if protocol == "leave_last_out":
        return data + ["data.split=leave_last_out", "data.val_fraction=0.1", "sessions.sequence=user"]
    return data + ["data.split=session", "sessions.sequence=session"]


def metric_keys(protocol: str) -> list[str]:
    return ["hit_rate@10", "ndcg@10", "mrr"] if protocol == "leave_last_out" else ["recall@20", "mrr@20"]


def bench_cell(cell: str, args, base: Path) -> dict:
    from tfrs_app.data.prepare import prepare_data
    from tfrs_app.retrieval.train import load_trained, run as train_retrieval
    from tfrs_app.sequences.compare import NextItemEarlyStopping, trained_tower_scorer
    from tfrs_app.sequences.train import cases_of, evaluate_cases, metric_name, train_and_evaluate

    protocol = cell.split("/", 1)[1]
    slug = cell.replace("/", "-")
    common = cell_overrides(cell) + [f"seed={args.seed}"]
    rows, val = {}, {}
    for loss in args.losses:
        cfg = load_config(None, common + [f"run_dir={base / slug}", f"sessions.loss={loss}"] + LOSS_SETTINGS[loss])
        data = prepare_data(cfg)
        print(f"[{cell}] gru4rec {loss}", flush=True)
        started = time.perf_counter()
        _, report = train_and_evaluate(cfg, data)
        training = report["training"]
        epochs = training["epochs"]
        name = f"gru4rec_{loss}"
        rows[name] = {**{k: report["test"]["gru4rec"][k] for k in metric_keys(protocol)},
                      "seconds_per_epoch": sum(e["seconds"] for e in epochs) / len(epochs),
                      "events_per_second": training["events_per_second"], "best_epoch": training["best_epoch"],
                      "epochs": len(epochs), "wall_seconds": time.perf_counter() - started}
        best_val = max((e for e in epochs if f"val_{metric_name(cfg)}" in e),
                       key=lambda e: e[f"val_{metric_name(cfg)}"], default=None)
        val[name] = None if best_val is None else best_val[f"val_{metric_name(cfg)}"]
        for baseline in ("popularity", "session_knn"):
            if baseline not in rows:
                rows[baseline] = {k: report["test"][baseline][k] for k in metric_keys(protocol)}
                rows[baseline]["fit_and_score_seconds"] = report["test"][baseline]["seconds"]
        sessions = report["sessions"]
    for encoder in args.encoders:
        run_dir = base / f"{slug}-tower-{encoder}"
        cfg = load_config(None, common + [f"run_dir={run_dir}", "retrieval.use_history=true",
                                          "retrieval.history_dropout=0.0", f"retrieval.history_encoder={encoder}",
                                          "retrieval.baselines=[]", "retrieval.early_stopping_patience=0",
                                          "retrieval.refit_on_validation=false"])
        print(f"[{cell}] tower {encoder}", flush=True)
        started = time.perf_counter()
        data = prepare_data(cfg)
        stopper = NextItemEarlyStopping(cases_of(data, cfg, "val"), data.catalog, cfg.data.history_length,
                                        cfg.sessions.k, cfg.sessions.early_stopping_patience)
        metrics = train_retrieval(cfg, callbacks=[stopper])
        cases = cases_of(data, cfg, "test")
        test = evaluate_cases(trained_tower_scorer(load_trained(run_dir), cases), cases, cfg.sessions.k)
        epochs_run = len(metrics["loss"])
        rows[f"tower_{encoder}"] = {**{k: test[k] for k in metric_keys(protocol)},
                                    "seconds_per_epoch": metrics["train_seconds"] / epochs_run,
                                    "events_per_second": epochs_run * metrics["splits"]["train"] / metrics["train_seconds"],
                                    "best_epoch": stopper.best_epoch, "epochs": epochs_run,
                                    "wall_seconds": time.perf_counter() - started}
        val[f"tower_{encoder}"] = max(stopper.history)
    key = metric_keys(protocol)[0]
    chosen = max((n for n in val if n.startswith("gru4rec") and val[n] is not None), key=lambda n: val[n],
                 default=None)
    ratios = {}
    if chosen:
        for other in ("tower_mean", "session_knn", "popularity"):
            if other in rows and rows[other][key] > 0:
                ratios[f"{chosen}/{other}"] = rows[chosen][key] / rows[other][key]
    return {"rows": rows, "val": val, "best_gru4rec": chosen, "ratios": ratios, "metric": key, "sessions": sessions}


def format_cell(cell: str, result: dict) -> str:
    protocol = cell.split("/", 1)[1]
    keys = metric_keys(protocol)
    lines = [f"## {cell}  (best GRU4Rec loss on validation: {result['best_gru4rec']})",
             f"| model | {' | '.join(keys)} | s/epoch | events/s |", "|" + " --- |" * (len(keys) + 3)]
    for name, row in result["rows"].items():
        speed = (f"{row['seconds_per_epoch']:.1f} | {row['events_per_second']:,.0f}" if "seconds_per_epoch" in row
                 else "- | -")
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + f" | {speed} |")
    lines += [f"{name}: {value:.2f}x" for name, value in result["ratios"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list(CELLS[:2]), choices=CELLS)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sessions.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        for cell in args.cells:
            results[cell] = bench_cell(cell, args, Path(tmp))
            print(format_cell(cell, results[cell]), flush=True)
    atomic_write_json(args.out, {"command": " ".join(sys.argv), "args": vars(args), "cells": results,
                                 "git": git_state(), "machine": platform.platform(),
                                 "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                 "wall_seconds": time.perf_counter() - started})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
