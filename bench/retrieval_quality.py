"""Benchmark: retrieval quality over three protocols and two datasets, ours against strong baselines.

Datasets: ``movielens`` (ml-latest-small through the real tfds loader, offline from
``--manual-dir``; config ``pipelines/configs/movielens.yaml``) and ``synthetic`` (the embedded
default of ``make demo``, ``pipelines/configs/demo.yaml``).

Protocols (``data.*`` overrides on the dataset's config; validation is always carved out of
the training share, never out of test):

- ``random``: the TFRS tutorials' protocol, 20% of events at random are test; 10% of all events
  (from the other 80%) are validation, so models train on 70%. ``top_100_accuracy`` is the
  tutorials' FactorizedTopK number (nothing excluded); ``top_100_accuracy_excl`` first removes
  the user's known items, as a served list does.
- ``time``: one global time cut, 80/10/10: train on the past, test on the future.
- ``leave_last_out``: each user's last event is test, the one before it validation; per-user
  HitRate@10, nDCG@10 and MRR over the full catalog, seen items excluded.

Models, all on the same splits of one run: ``popularity``, ``recent_popularity``, ``item_knn``
and ``ease`` (EASE^R), each tuned on validation (``tfrs_app/retrieval/compare.py``); ``tutorial``
(``pipelines/configs/tfrs_tutorial.yaml``'s id-only towers, no logQ, its own 3 epochs, trained
on train + validation) and ``tutorial_logq`` (the same with logQ); ``ours`` (the dataset config's
defaults: early stopping on validation Recall@100, then a refit on train + validation for the
best epoch count; the classical baselines likewise refit on train + validation). Test is read once per model; nothing is chosen
on it. ``--ablations`` adds variants of ours (each setting switched on its own) on the
protocols given by ``--ablation-protocols``, val and test both reported.

Run: python bench/retrieval_quality.py [--datasets movielens synthetic] [--protocols ...] [--ablations]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _shared import git_state  # noqa: E402

import tfrs_app  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfrs_app.io import atomic_write_json  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfrs_app.config import load_config  # noqa: E402
from tfrs_app.retrieval.train import run  # noqa: E402

PROTOCOLS = {
    "random": ["data.split=random", "data.val_fraction=0.1", "data.test_fraction=0.2"],
    "time": ["data.split=time", "data.val_fraction=0.1", "data.test_fraction=0.1"],
    "leave_last_out": ["data.split=leave_last_out", "data.val_fraction=0.1"],
}
DATASETS = {"movielens": "movielens.yaml", "synthetic": "demo.yaml"}
BASELINES = ["popularity", "recent_popularity", "item_knn", "ease"]
COLUMNS = ["top_100_accuracy", "top_100_accuracy_excl", "recall@100", "ndcg@10", "hit_rate@10", "mrr"]
COMPARE = ["recall@100", "ndcg@10", "top_100_accuracy"]
ABLATIONS = {  # each switches one setting of ours
    "no_logq": ["retrieval.use_logq=false"],
    "with_history": ["retrieval.use_history=true", "retrieval.history_dropout=0.5"],
    "with_history_no_dropout": ["retrieval.use_history=true", "retrieval.history_dropout=0.0"],
    "no_time": ["retrieval.use_time=false"],
    "no_item_text_genres": ["retrieval.use_text=false", "retrieval.use_genres=false"],
    "no_id_dropout": ["retrieval.id_dropout=0.0"],
    "id_dropout_0.3": ["retrieval.id_dropout=0.3"],
    "recency_365d": ["retrieval.recency_half_life_days=365"],
    "no_l2_norm": ["retrieval.l2_normalize=false", "retrieval.temperature=1.0"],
    "no_item_bias": ["retrieval.item_bias=false"],
    "temperature_0.05": ["retrieval.temperature=0.05"],
    "adagrad": ["retrieval.optimizer=adagrad", "retrieval.learning_rate=0.1"],
    "cosine_lr": ["retrieval.lr_schedule=cosine"],
    "no_refit": ["retrieval.refit_on_validation=false"],
    "mixed_negatives_uniform": ["retrieval.num_sampled_negatives=512", "retrieval.negative_sampling=uniform"],
    "mixed_negatives_pop": ["retrieval.num_sampled_negatives=512", "retrieval.negative_sampling=popularity"],
    "mixed_negatives_frequency_logq": ["retrieval.num_sampled_negatives=512", "retrieval.sampled_logq=batch_frequency"],
    "hard_negatives": ["retrieval.num_sampled_negatives=512", "retrieval.num_hard_negatives=64"],
}


def tutorial_overrides() -> list[str]:
    """The tutorial config's retrieval section as --set items, so it runs on any dataset."""
    raw = yaml.safe_load((ROOT / "pipelines/configs/tfrs_tutorial.yaml").read_text())["retrieval"]
    return [f"retrieval.{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in raw.items()]


def data_overrides(dataset: str, protocol: str, args) -> list[str]:
    extra = [f"data.data_dir={args.data_dir}", f"data.manual_dir={args.manual_dir}"] if dataset == "movielens" else []
    return PROTOCOLS[protocol] + extra


def train(dataset: str, protocol: str, name: str, overrides: list[str], args, tmp: str) -> dict:
    cfg = load_config(ROOT / "pipelines/configs" / DATASETS[dataset],
                      data_overrides(dataset, protocol, args) + overrides
                      + [f"seed={args.seed}", f"run_dir={tmp}/{dataset}-{protocol}-{name}"])
    print(f"[{dataset}/{protocol}] {name}: at most {cfg.retrieval.epochs} epochs in {cfg.run_dir}", flush=True)
    started = time.perf_counter()
    metrics = run(cfg)
    metrics["wall_seconds"] = time.perf_counter() - started
    metrics["config"] = cfg.to_dict()
    return metrics


def pick(metrics: dict | None) -> dict | None:
    return None if metrics is None else {key: metrics[key] for key in COLUMNS + ["num_queries"]}


def bench_cell(dataset: str, protocol: str, args, tmp: str) -> dict:
    """Every model of one dataset x protocol; rows[name] = {val, test, train_seconds, ...}."""
    rows, raw = {}, {}
    ours = train(dataset, protocol, "ours", [f"retrieval.baselines={BASELINES}"], args, tmp)
    raw["ours"] = ours
    for b in BASELINES:
        if b in ours["test"]:
            rows[b] = {"val": pick(ours.get("val", {}).get(b)), "test": pick(ours["test"][b]),
                       "train_seconds": ours["baselines"][b]["fit_seconds"], "params": ours["baselines"][b]["params"]}
    for name, extra in (("tutorial", []), ("tutorial_logq", ["retrieval.use_logq=true"])):
        # no validation: the tutorial's fixed epochs see train + validation, as ours' refit does
        # (test is carved first in every protocol, so it is the same test set)
        m = train(dataset, protocol, name, tutorial_overrides() + extra + ["retrieval.baselines=[]",
                                                                            "data.val_fraction=0.0"], args, tmp)
        raw[name] = m
        rows[name] = {"val": pick(m.get("val", {}).get("model")), "test": pick(m["test"]["model"]),
                      "train_seconds": m["train_seconds"], "epochs": len(m["loss"])}
    rows["ours"] = {"val": pick(ours.get("val", {}).get("model")), "test": pick(ours["test"]["model"]),
                    "train_seconds": ours["train_seconds"], "epochs": len(ours["loss"]),
                    "best_epoch": (ours.get("early_stopping") or {}).get("best_epoch")}
    if args.ablations and protocol in args.ablation_protocols and dataset in args.ablation_datasets:
        for name, extra in ABLATIONS.items():
            m = train(dataset, protocol, name, extra + ["retrieval.baselines=[]"], args, tmp)
            raw[name] = m
            rows[f"ours:{name}"] = {"val": pick(m.get("val", {}).get("model")),
                                    "test": pick(m["test"]["model"]), "train_seconds": m["train_seconds"],
                                    "epochs": len(m["loss"]),
                                    "best_epoch": (m.get("early_stopping") or {}).get("best_epoch")}
    ratios = {base: {key: rows["ours"]["test"][key] / rows[base]["test"][key] if rows[base]["test"][key] else None
                     for key in COMPARE} for base in rows if base != "ours" and not base.startswith("ours:")}
    return {"models": rows, "ours_over": ratios, "splits": ours["splits"], "num_items": ours["num_items"],
            "raw_metrics": raw}


def markdown(report: dict) -> str:
    header = ["dataset", "protocol", "model"] + COLUMNS + ["train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell, res in report["cells"].items():
        dataset, protocol = cell.split("/")
        for name, m in res["models"].items():
            secs = "-" if m["train_seconds"] is None else f"{m['train_seconds']:.1f}"
            lines.append("| " + " | ".join([dataset, protocol, name] + [f"{m['test'][c]:.4f}" for c in COLUMNS]
                                           + [secs]) + " |")
    lines.append("")
    for cell, res in report["cells"].items():
        parts = []
        for base, r in res["ours_over"].items():
            if base in ("popularity", "item_knn", "ease", "tutorial_logq"):
                parts.append(f"{base} " + "/".join(f"x{r[k]:.2f}" if r[k] else "n/a" for k in COMPARE))
        lines.append(f"- {cell}: ours over ({'/'.join(COMPARE)}): " + ", ".join(parts))
    if any(name.startswith("ours:") for res in report["cells"].values() for name in res["models"]):
        lines += ["", "| dataset | protocol | variant | val recall@100 | val ndcg@10 | test recall@100 | test ndcg@10 "
                  "| test top_100_accuracy | epochs |", "|---|---|---|---|---|---|---|---|---|"]
        for cell, res in report["cells"].items():
            dataset, protocol = cell.split("/")
            for name, m in res["models"].items():
                if name == "ours" or name.startswith("ours:"):
                    v, t = m["val"] or {}, m["test"]
                    lines.append(f"| {dataset} | {protocol} | {name} | {v.get('recall@100', float('nan')):.4f} | "
                                 f"{v.get('ndcg@10', float('nan')):.4f} | {t['recall@100']:.4f} | {t['ndcg@10']:.4f} | "
                                 f"{t['top_100_accuracy']:.4f} | {m['epochs']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", default=str(ROOT.parent / "shared/data/ml-latest-small"))
    parser.add_argument("--data-dir", default=str(ROOT / ".cache/tfds"))
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["movielens", "synthetic"])
    parser.add_argument("--protocols", nargs="+", choices=list(PROTOCOLS), default=list(PROTOCOLS))
    parser.add_argument("--ablations", action="store_true", help="also run ABLATIONS (variants of ours)")
    parser.add_argument("--ablation-protocols", nargs="+", choices=list(PROTOCOLS), default=["time"])
    parser.add_argument("--ablation-datasets", nargs="+", choices=sorted(DATASETS), default=["movielens"])
    parser.add_argument("--seed", type=int, default=0, help="the models' seed (the splits keep data.seed)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/retrieval_quality.json"))
    args = parser.parse_args()
    args.manual_dir, args.data_dir = os.path.abspath(args.manual_dir), os.path.abspath(args.data_dir)
    if "movielens" in args.datasets and not (Path(args.manual_dir) / "ml-latest-small.zip").is_file():
        sys.exit(f"error: {args.manual_dir}/ml-latest-small.zip not found; pass --manual-dir <folder with the zip>")

    started = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="retrieval_quality_")
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "tensorflow": tf.__version__},
              "command": " ".join([Path(sys.executable).name] + sys.argv),
              "git": git_state()["state"], "args": vars(args), "run_root": tmp, "cells": {}}
    for dataset in args.datasets:
        for protocol in args.protocols:
            report["cells"][f"{dataset}/{protocol}"] = bench_cell(dataset, protocol, args, tmp)
            atomic_write_json(Path(args.out), report)  # partial results survive a stopped run
    report["wall_seconds"] = time.perf_counter() - started
    atomic_write_json(Path(args.out), report)
    print(markdown(report))
    print(f"\nwrote {args.out} ({report['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
