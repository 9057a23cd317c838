"""Threshold stage: uncertainty buckets and per-bucket thresholds, fitted on validation only.

Reads ``<run_dir>/ranker/predictions/{val,test}.parquet`` (MC mean and std per head, written by
the ranker stage) and writes:

    <run_dir>/ranker/thresholds/<head>.json   the ThresholdTable each head serves with
                                              (policy ``ranker.threshold_policy`` at
                                              ``ranker.decision_targets[head]``), float32-exact
    <run_dir>/ranker/report.json, report.md   per head: AUC, PR-AUC, log loss, ECE; for every
                                              policy and target, test precision and recall with
                                              paired-bootstrap 95% CIs, the gain over the global
                                              threshold, and recall at matched test precision
    <run_dir>/ranker/plots/*.png              positive rate vs score per bucket, reliability,
                                              PR curves per policy

Edges and thresholds never see test labels: test only measures them.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_app.config import HEADS, Config, load_config
from tfrs_app.decision.thresholds import ThresholdTable, fit_table
from tfrs_app.evaluation.report import format_threshold_report, threshold_report
from tfrs_app.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def head_arrays(frame: pd.DataFrame, head: str) -> dict[str, np.ndarray]:
    """{score, std, label} of the rows where ``head``'s label is known."""
    label = frame[f"{head}_label"].to_numpy(np.float64)
    known = ~np.isnan(label)
    return {"score": frame[f"{head}_score"].to_numpy(np.float64)[known],
            "std": frame[f"{head}_std"].to_numpy(np.float64)[known], "label": label[known]}


def calibrate(run_dir: str | Path, cfg: Config | None = None) -> dict:
    """Fits and evaluates every policy per head; saves the serving tables; returns the report."""
    run_dir = Path(run_dir)
    stage = run_dir / "ranker"
    predictions = {name: stage / "predictions" / f"{name}.parquet" for name in ("val", "test")}
    if not all(p.exists() for p in predictions.values()):
        raise FileNotFoundError(f"{run_dir}: no ranker predictions (run `tfrs-app train-ranker` first)")
    cfg = cfg or load_config(stage / "config.yaml")
    r = cfg.ranker
    frames = {name: pd.read_parquet(path) for name, path in predictions.items()}
    reports, tables = {}, {}
    for head in HEADS:
        val, test = head_arrays(frames["val"], head), head_arrays(frames["test"], head)
        if len(val["label"]) == 0 or len(np.unique(val["label"])) < 2:
            (stage / "thresholds" / f"{head}.json").unlink(missing_ok=True)  # never serve an older model's table
            log.warning("%s: validation labels are missing or all one class; no thresholds for this head "
                        "(the ranker cannot be exported until it has them)", head)
            continue
        target = r.decision_target(head)
        reports[head] = threshold_report(head, val, test, targets=tuple(sorted(set(r.report_targets) | {target})),
                                         num_buckets=r.num_buckets, min_positives=r.min_positives,
                                         num_bootstrap=r.num_bootstrap, seed=cfg.seed, plot_dir=stage / "plots")
        if reports[head]["targets"][str(target)]["trivial"]:
            log.warning("%s: decision target %.3f is at or below the validation base rate %.3f; every item passes. "
                        "Raise ranker.decision_targets.%s for a decision that bites.", head, target,
                        float(val["label"].mean()), head)
        table = fit_table(head, r.threshold_policy, val["score"], val["std"], val["label"], target,
                          num_buckets=r.num_buckets, min_positives=r.min_positives)
        tables[head] = as_float32(table)
        tables[head].save(stage / "thresholds" / f"{head}.json")
    atomic_write_json(stage / "report.json", reports)
    atomic_write_text(stage / "report.md", "\n\n".join(format_threshold_report(rep) for rep in reports.values()))
    return reports


def as_float32(table: ThresholdTable) -> ThresholdTable:
    """Edges and thresholds rounded to float32, the precision the SavedModel compares in, so the
    JSON table and the graph make the same decisions bit for bit."""
    def f32(values):
        return tuple(float(np.float32(v)) for v in values)
    return replace(table, edges=f32(table.edges), thresholds=f32(table.thresholds))


def load_tables(run_dir: str | Path) -> dict[str, ThresholdTable]:
    """The serving ThresholdTable of every head (FileNotFoundError naming the first missing one)."""
    tables = {}
    for head in HEADS:
        path = Path(run_dir) / "ranker" / "thresholds" / f"{head}.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no thresholds for {head} (run `tfrs-app calibrate-thresholds`; a head "
                                    "whose validation labels are all one class gets none)")
        tables[head] = ThresholdTable.load(path)
    return tables
