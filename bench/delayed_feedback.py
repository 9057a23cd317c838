"""Benchmark: the ranker trained at one cut-off with each delayed-feedback method, scored on the
eventual labels of the test period.

Data: the synthetic delayed-conversion log (``tfrs_app/feedback/synthetic.py``, config
``pipelines/configs/delayed.yaml``): 60k impressions over 40 days, time split 80/10/10, the
cut-off at the last training impression, about 30% of the training window's eventual positives
still pending there. Every method trains the same ranker config on the same rows; only the
engagement labels and weights of the training split differ (``tfrs_app/feedback/weights.py``).
``oracle`` trains on the eventual labels (a bound, not a method).

Tuned on validation only: for every method and seed, the ranker's epochs are picked from
``--epochs`` by validation log loss (validation: the 4 days after the cut-off, eventual labels),
and the test numbers of that run are reported (deterministic predictions; MC dropout is cut to
2 samples, as its std is not used here). Per method (mean and std over ``--seeds``, each
seed a new log and a new model seed): test AUC, log loss, ECE, calibration (mean prediction /
test positive rate - 1), the share of the naive -> oracle log-loss gap closed, the positive rate
the method trained toward, and seconds (weighting incl. the hazard fit, ranker training).
The same table at the ranker's default 3 epochs for every method is written beside it.
Ablation ``*_with_time``: naive and pre_conversion with the ranker's time features on (the
default config turns them off, see delayed.yaml), at their chosen epochs.

Anchor (ES-DFM paper, Criteo conversion logs, AUC): vanilla 0.8376, FSIW 0.8290, ES-DFM 0.8402,
oracle 0.8450.

Run: python bench/delayed_feedback.py [--seeds 0 1 2] [--epochs 3 6 12] [--out PATH]
"""
from __future__ import annotations

import argparse
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
import pandas as pd  # noqa: E402

from tfrs_app.config import FEEDBACK_METHODS, load_config  # noqa: E402
from tfrs_app.io import atomic_write_json  # noqa: E402

CONFIG = ROOT / "pipelines" / "configs" / "delayed.yaml"
RANKER_DEFAULT_EPOCHS = 3  # RankerConfig.epochs: also tabulated, every method at the ranker's default


def one_run(method: str, seed: int, epochs: int, base: Path, extra: list[str]) -> dict:
    from tfrs_app.ranking.train import run

    run_dir = base / f"{method}-s{seed}-e{epochs}-{len(extra)}"
    cfg = load_config(CONFIG, [f"feedback.method={method}", f"seed={seed}", f"data.delayed.seed={seed}",
                               f"ranker.epochs={epochs}", f"run_dir={run_dir}", "ranker.mc_samples=2", *extra])
    started = time.perf_counter()
    metrics = run(cfg)
    wall = time.perf_counter() - started
    test = pd.read_parquet(run_dir / "ranker" / "predictions" / "test.parquet")
    feedback = metrics["feedback"]
    return {
        "method": method, "seed": seed, "epochs": epochs, "overrides": extra,
        "val": metrics["val"]["engagement"]["model"], "test": metrics["test"]["engagement"]["model"],
        "calibration": float(test["engagement_det"].mean() / test["engagement_label"].mean() - 1),
        "trained_positive_rate": feedback.get("trained_positive_rate"),
        "pending_at_cutoff": feedback.get("pending_at_cutoff"),
        "weight": feedback.get("weight"), "hazard_seconds": feedback.get("hazard", {}).get("seconds", 0.0),
        "train_seconds": metrics["train_seconds"], "wall_seconds": wall,
    }


def evaluate_methods(methods, seeds, epochs, base: Path, ablations: bool = False) -> tuple[list, dict]:
    """(every run, {(method, seed): the validation-chosen run}); with ``ablations`` also the
    *_with_time rows at the chosen epochs."""
    runs, chosen = [], {}
    for seed in seeds:
        for method in methods:
            trials = [one_run(method, seed, e, base, []) for e in epochs]
            best = min(trials, key=lambda r: r["val"]["log_loss"])
            best["chosen"] = True
            runs += trials
            chosen[(method, seed)] = best
            print(f"seed {seed} {method}: epochs {best['epochs']} (val log loss "
                  + ", ".join(f"{t['epochs']}: {t['val']['log_loss']:.4f}" for t in trials)
                  + f"), test log loss {best['test']['log_loss']:.4f}, calibration {best['calibration']:+.3f}",
                  flush=True)
        for method in ("naive", "pre_conversion") if ablations else ():
            if method in methods:
                row = one_run(method, seed, chosen[(method, seed)]["epochs"], base, ["ranker.use_time=true"])
                row["method"], row["chosen"] = f"{method}_with_time", True
                runs.append(row)
                chosen[(row["method"], seed)] = row
    return runs, chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 6, 12])
    parser.add_argument("--methods", nargs="+", default=list(FEEDBACK_METHODS), choices=FEEDBACK_METHODS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "delayed_feedback.json"))
    parser.add_argument("--tabulate", metavar="JSON", help="print the tables of an earlier result and exit")
    args = parser.parse_args(argv)
    if args.tabulate:
        result = json.loads(Path(args.tabulate).read_text())
        print(format_table(result, "summary"))
        print(format_table(result, f"summary_at_{RANKER_DEFAULT_EPOCHS}_epochs"))
        return 0
    if "naive" not in args.methods or "oracle" not in args.methods:
        parser.error("--methods must include naive and oracle (the gap is measured between them)")

    with tempfile.TemporaryDirectory(prefix="tfrs-delayed-") as tmp:
        runs, chosen = evaluate_methods(args.methods, args.seeds, args.epochs, Path(tmp), ablations=True)

    summary = summarize(runs, args.seeds)
    at_default = summarize(runs, args.seeds, epochs=RANKER_DEFAULT_EPOCHS)
    result = {
        "benchmark": "delayed_feedback", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(), "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "config": str(CONFIG.relative_to(ROOT)), "seeds": args.seeds, "epochs_grid": args.epochs,
        "pending_at_cutoff": float(np.mean([chosen[("naive", s)]["pending_at_cutoff"] for s in args.seeds])),
        "test_positive_rate": float(np.mean([chosen[("naive", s)]["test"]["base_rate"] for s in args.seeds])),
        "summary": summary, f"summary_at_{RANKER_DEFAULT_EPOCHS}_epochs": at_default, "runs": runs,
        "anchor_es_dfm_paper_criteo_auc": {"vanilla": 0.8376, "fsiw": 0.8290, "es_dfm": 0.8402, "oracle": 0.8450},
    }
    atomic_write_json(args.out, result)
    print(format_table(result, "summary"))
    print(format_table(result, f"summary_at_{RANKER_DEFAULT_EPOCHS}_epochs"))
    print(f"wrote {args.out}")
    return 0


def stat(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def summarize(runs: list[dict], seeds: list[int], epochs: int | None = None) -> dict:
    """{method: stats over seeds}: the validation-chosen run per method and seed, or (``epochs``)
    the run at that epoch count (the *_with_time ablations exist only at their chosen epochs)."""
    pick = {}
    for r in runs:
        if (r.get("chosen") if epochs is None else r["epochs"] == epochs and not r["overrides"]):
            pick[(r["method"], r["seed"])] = r
    summary = {}
    for name in dict.fromkeys(m for m, _ in pick):
        rows = [pick[(name, s)] for s in seeds if (name, s) in pick]
        gaps = []
        for r in rows:
            naive, oracle = pick[("naive", r["seed"])]["test"]["log_loss"], pick[("oracle", r["seed"])]["test"]["log_loss"]
            gaps.append((naive - r["test"]["log_loss"]) / (naive - oracle) if naive > oracle else float("nan"))
        summary[name] = {
            "auc": stat([r["test"]["auc"] for r in rows]), "log_loss": stat([r["test"]["log_loss"] for r in rows]),
            "ece": stat([r["test"]["ece"] for r in rows]), "calibration": stat([r["calibration"] for r in rows]),
            "gap_closed": stat(gaps), "trained_positive_rate": stat([r["trained_positive_rate"] or 0 for r in rows]),
            "epochs": [r["epochs"] for r in rows], "weighting_seconds": stat([r["hazard_seconds"] for r in rows]),
            "train_seconds": stat([r["train_seconds"] for r in rows]),
        }
    return summary


def format_table(result: dict, key: str) -> str:
    def cell(s, digits=4, sign=False):
        fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
        return f"{fmt.format(s['mean'])} ± {s['std']:.{digits}f}"

    lines = [f"delayed feedback ({key}): {result['pending_at_cutoff']:.1%} of training positives pending at the "
             f"cut-off, test positive rate {result['test_positive_rate']:.4f}, seeds {result['seeds']}",
             "| method | test AUC | test log loss | ECE | calibration | naive->oracle gap closed | trained positive rate "
             "| epochs (val) | weighting s | train s |", "|---" * 10 + "|"]
    for name, s in result[key].items():
        lines.append(f"| {name} | {cell(s['auc'])} | {cell(s['log_loss'])} | {cell(s['ece'])} | "
                     f"{cell(s['calibration'], 3, True)} | {cell(s['gap_closed'], 2)} | "
                     f"{cell(s['trained_positive_rate'])} | {s['epochs']} | {s['weighting_seconds']['mean']:.1f} | "
                     f"{s['train_seconds']['mean']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
