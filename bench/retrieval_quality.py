"""Benchmark: retrieval quality of our two-tower model on MovieLens latest-small, against two baselines.

Per split protocol it trains and evaluates, each run in its own temporary run_dir:

- ``popularity``: most-popular-in-training first (computed inside every run; reported from ``ours``);
- ``tutorial``: ``pipelines/configs/tfrs_tutorial.yaml``, the TFRS basic-retrieval tutorial's model
  (id-only 32-dim towers, no logQ, Adagrad 0.1, batch 8192, its own 3 epochs);
- ``ours``: ``pipelines/configs/movielens.yaml`` (feature towers, logQ correction, Adam; ``--epochs`` overrides);
- ``ours_no_logq``: ours with ``retrieval.use_logq=false``, the ablation behind the logQ claim.

Metrics on the test split (see ``tfrs_app/retrieval/evaluate.py``): top-K accuracy per held-out
event (the tutorial's FactorizedTopK number) and per-user recall@K / nDCG@K with seen items excluded,
for K = 10, 100; plus training seconds, and ratios ours/popularity and ours/tutorial on recall@100
and top_100_accuracy, all from the same invocation on the same splits.

Protocols:

- ``random``: 80/20 random split of events (val 0, test 0.2), the TFRS tutorial's protocol. It
  flatters every model: training holds events from after the test events, so the model learns each
  user's and item's future (later tastes, items that become popular later) and is scored on a past it
  has effectively seen around. A deployed recommender never has that.
- ``time``: one global time cut (val 0.1, test 0.1): train on the past, test on the future, as in
  production. Numbers are lower and the honest ones.

The tutorial config is the comparison point because it is what people reproduce from the TFRS docs:
beating popularity alone is easy to claim, beating the reference model on its own protocol is not.

Run: python bench/retrieval_quality.py [--epochs N] [--protocols random time] [--out PATH]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _shared import git_state  # noqa: E402

import tfrs_app  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfrs_app.io import atomic_write_json  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfrs_app.config import load_config  # noqa: E402
from tfrs_app.retrieval.train import run  # noqa: E402

PROTOCOLS = {"random": (0.0, 0.2), "time": (0.1, 0.1)}  # (val_fraction, test_fraction)
COLUMNS = ["top_10_accuracy", "top_100_accuracy", "recall@10", "recall@100", "ndcg@10", "ndcg@100"]
RATIO_KEYS = ["recall@100", "top_100_accuracy"]


def configs(protocol: str, args, tmp: str) -> dict:
    """The three trained configs of one protocol (popularity comes with each of them)."""
    val, test = PROTOCOLS[protocol]
    common = [f"data.split={protocol}", f"data.val_fraction={val}", f"data.test_fraction={test}",
              f"data.data_dir={args.data_dir}", f"data.manual_dir={args.manual_dir}"]
    ours = common + ([f"retrieval.epochs={args.epochs}"] if args.epochs else [])
    movielens = ROOT / "pipelines/configs/movielens.yaml"
    specs = {"tutorial": (ROOT / "pipelines/configs/tfrs_tutorial.yaml", common),
             "ours": (movielens, ours), "ours_no_logq": (movielens, ours + ["retrieval.use_logq=false"])}
    return {name: load_config(path, overrides + [f"run_dir={tmp}/{protocol}-{name}"])
            for name, (path, overrides) in specs.items()}


def row(test_metrics: dict, seconds) -> dict:
    out = {key: test_metrics[key] for key in COLUMNS}
    out.update(num_queries=test_metrics["num_queries"], train_seconds=seconds)
    return out


def bench_protocol(protocol: str, args, tmp: str) -> dict:
    results, raw = {}, {}
    for name, cfg in configs(protocol, args, tmp).items():
        print(f"[{protocol}] training {name} ({cfg.retrieval.epochs} epochs) in {cfg.run_dir}", flush=True)
        started = time.perf_counter()
        metrics = run(cfg)
        raw[name] = dict(metrics, wall_seconds=time.perf_counter() - started, config=cfg.to_dict())
        results[name] = row(metrics["test"]["model"], metrics["train_seconds"])
        if name == "ours":
            results["popularity"] = row(metrics["test"]["popularity"], None)
    ratios = {f"ours/{base}": {key: results["ours"][key] / results[base][key] if results[base][key] else None
                               for key in RATIO_KEYS} for base in ("popularity", "tutorial")}
    order = ["popularity", "tutorial", "ours", "ours_no_logq"]
    return {"models": {name: results[name] for name in order}, "ratios": ratios, "raw_metrics": raw,
            "splits": raw["ours"]["splits"]}


def markdown(report: dict) -> str:
    header = ["protocol", "model"] + COLUMNS + ["train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for protocol, res in report["protocols"].items():
        for name, m in res["models"].items():
            secs = "-" if m["train_seconds"] is None else f"{m['train_seconds']:.1f}"
            lines.append("| " + " | ".join([protocol, name] + [f"{m[c]:.4f}" for c in COLUMNS] + [secs]) + " |")
    lines.append("")
    for protocol, res in report["protocols"].items():
        for base, r in res["ratios"].items():
            parts = [f"{k} x{v:.2f}" if v is not None else f"{k} n/a" for k, v in r.items()]
            lines.append(f"- {protocol}: {base}: " + ", ".join(parts))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", default=str(ROOT.parent / "shared/data/ml-latest-small"))
    parser.add_argument("--data-dir", default=str(ROOT / ".cache/tfds"))
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of ours (default: pipelines/configs/movielens.yaml's; the tutorial keeps its own)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/retrieval_quality.json"))
    parser.add_argument("--protocols", nargs="+", choices=sorted(PROTOCOLS), default=["random", "time"])
    args = parser.parse_args()
    args.manual_dir, args.data_dir = os.path.abspath(args.manual_dir), os.path.abspath(args.data_dir)
    if not (Path(args.manual_dir) / "ml-latest-small.zip").is_file():
        sys.exit(f"error: {args.manual_dir}/ml-latest-small.zip not found; pass --manual-dir <folder with the zip>")

    started = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="retrieval_quality_")
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "tensorflow": tf.__version__},
              "command": " ".join([Path(sys.executable).name] + sys.argv),
              "git": git_state()["state"], "args": vars(args), "run_root": tmp, "protocols": {}}
    for protocol in args.protocols:
        report["protocols"][protocol] = bench_protocol(protocol, args, tmp)
    report["wall_seconds"] = time.perf_counter() - started
    atomic_write_json(Path(args.out), report)
    print(markdown(report))
    print(f"\nwrote {args.out} ({report['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
