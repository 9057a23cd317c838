"""Threshold report of one head: every policy fitted on validation, measured on test.

Protocol (ARCHITECTURE.md section 3): the std bucket edges and all thresholds are fitted on
validation only; test precision and recall are reported for every policy with paired bootstrap
CIs against the single global threshold. Policies:

- ``global``, ``isotonic``, ``dp``, ``mist``: ``tfrs_app.decision.thresholds``;
- ``placebo``: the DP on random buckets of the same sizes (``placebo_buckets``, a different
  permutation on val and on test). It has as many thresholds as ``dp`` but no information in
  its buckets: a "gain" it shows is what overfitting the extra thresholds buys, and a gain of
  ``dp`` counts only if it clearly beats both ``global`` and ``placebo``.

A recall gain at a lower test precision is no gain, so policies are also compared at matched
test precision: each policy is fitted on val at a grid of targets and measured on test, and
``recall_at_matched_precision`` is its highest test recall among grid points whose *test*
precision reaches the target. ``global`` uses the exact test PR curve of the score instead (its
every threshold, chosen with hindsight on test), which favours the baseline: a policy that
beats it at matched precision beats every global threshold.

Significance: ``recall_diff_vs_global.significant`` (the paired CI of the recall difference
excludes 0) holds the fitted thresholds fixed, so at tens of thousands of test examples it
flags almost any two different operating points, the placebo's included (one selects a little
more at a little less precision). ``matched_gain_vs_global`` is the test of a real gain: per
bootstrap resample, the policy's recall minus the best global threshold's recall at the
policy's own precision on that resample; significant when its CI lies above 0.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from tfrs_app.decision.buckets import assign_buckets, bucket_edges, placebo_buckets
from tfrs_app.decision.thresholds import POLICIES, check_target, fit_dp, fit_table, validate_inputs
from tfrs_app.evaluation.bootstrap import paired_bootstrap
from tfrs_app.evaluation.metrics import (classification_metrics, pr_curve_for_policy, precision_recall,
                                         recall_at_precision, score_pr_curve)
from tfrs_app.evaluation.plots import plot_positive_rate_by_bucket, plot_pr_curves, plot_reliability

REPORT_POLICIES = POLICIES + ("placebo",)
BASELINE = "global"
TARGET_GRID = tuple(float(t) for t in np.linspace(0.5, 0.99, 25))
EXACT_CURVE_POINTS = 200  # the global policy's exact test PR curve is thinned to this many points


def _split(data: Mapping[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """{"score", "std", "label"} validated (1-D, same length, finite, labels 0/1)."""
    missing = [k for k in ("score", "std", "label") if k not in data]
    if missing:
        raise ValueError(f"{name}: missing arrays {missing} (expected score, std and label)")
    try:
        score, label, _, std, _ = validate_inputs(data["score"], data["label"], std=data["std"])
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return {"score": score, "std": std, "label": label}


def _json_safe(value):
    """NaN -> None, +/-inf -> "inf"/"-inf", numpy scalars and arrays -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return value


def _thin(values: np.ndarray, points: int) -> np.ndarray:
    return values if values.size <= points else values[np.unique(np.linspace(0, values.size - 1, points).round()
                                                                  .astype(np.int64))]


def threshold_report(head: str, val: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray],
                     targets: Sequence[float] = (0.8, 0.9), num_buckets: int = 5, min_positives: int = 20,
                     num_bootstrap: int = 1000, seed: int = 0, plot_dir: Optional[str | os.PathLike] = None,
                     bin_size: Optional[int] = None, alpha: float = 0.05) -> dict:
    """Fits every policy on ``val`` and measures it on ``test``, per precision target.

    val, test: {"score": [N], "std": [N], "label": [N]} for the rows where the head's label is
    known. Returns a JSON-safe dict (NaN as null, infinite thresholds as "inf"):

        {"head", "n_val", "n_test", "metrics": {"val", "test"}, "edges", "bucket_counts_val",
         "bucket_counts_test", "grid",
         "targets": {"0.9": {"trivial": target <= val base rate, "policies": {policy: {
             "thresholds", "fallback", "val": {precision, recall},
             "test": {precision, recall, precision_ci, recall_ci},
             "recall_diff_vs_global": {point, ci, significant},      (not for global)
             "precision_diff_vs_global": {point, ci},                (not for global)
             "matched_gain_vs_global": {point, ci, significant},     (not for global)
             "recall_at_matched_precision"}}}},
         "curves": {policy: {targets, precision, recall, thresholds}, "global_exact": {precision, recall}},
         "tables": {"0.9": {policy: ThresholdTable.to_dict()}},       (not placebo: it cannot serve)
         "plots": {name: file name in plot_dir}}
    """
    val_data, test_data = _split(val, "val"), _split(test, "test")
    targets = tuple(check_target(t) for t in targets)
    edges = bucket_edges(val_data["std"], num_buckets)
    count = edges.size + 1
    val_bucket = assign_buckets(val_data["std"], edges)
    test_bucket = assign_buckets(test_data["std"], edges)
    placebo_val = placebo_buckets(val_bucket, seed)
    placebo_test = placebo_buckets(test_bucket, seed + 1)
    report: dict = {
        "head": head, "n_val": int(val_data["label"].size), "n_test": int(test_data["label"].size),
        "metrics": {"val": classification_metrics(val_data["score"], val_data["label"]),
                    "test": classification_metrics(test_data["score"], test_data["label"])},
        "edges": edges.tolist(),
        "bucket_counts_val": np.bincount(val_bucket, minlength=count).tolist(),
        "bucket_counts_test": np.bincount(test_bucket, minlength=count).tolist(),
        "num_bootstrap": int(num_bootstrap), "alpha": float(alpha), "seed": int(seed),
        "targets": {}, "tables": {}, "plots": {},
    }

    for target in targets:
        key = str(target)
        policies, decisions, report["tables"][key] = {}, {}, {}
        for policy in POLICIES:
            table = fit_table(head, policy, val_data["score"], val_data["std"], val_data["label"], target,
                              min_positives=min_positives, bin_size=bin_size, edges=edges)
            report["tables"][key][policy] = table.to_dict()
            decisions[policy] = table.select(test_data["score"], test_bucket)
            policies[policy] = {"thresholds": list(table.thresholds), "fallback": list(table.fallback),
                                "val": {"precision": table.val_precision, "recall": table.val_recall}}
        placebo = fit_dp(val_data["score"], placebo_val, val_data["label"], target, count, bin_size=bin_size,
                         min_positives=min_positives)
        decisions["placebo"] = test_data["score"] >= placebo.thresholds[placebo_test]
        placebo_val_precision, placebo_val_recall = precision_recall(
            val_data["score"] >= placebo.thresholds[placebo_val], val_data["label"])
        policies["placebo"] = {"thresholds": placebo.thresholds.tolist(), "fallback": list(placebo.fallback),
                               "val": {"precision": placebo_val_precision, "recall": placebo_val_recall}}

        boot = paired_bootstrap(test_data["label"], decisions, BASELINE, num_bootstrap, seed, alpha,
                                baseline_score=test_data["score"])
        for policy, stats in boot["policies"].items():
            entry = policies[policy]
            entry["test"] = {k: stats[k] for k in ("precision", "recall", "precision_ci", "recall_ci")}
            if policy != BASELINE:
                entry["recall_diff_vs_global"] = {**stats["recall_diff"], "significant": stats["significant"]}
                entry["precision_diff_vs_global"] = dict(stats["precision_diff"])
                entry["matched_gain_vs_global"] = dict(stats["matched_gain"])
        base_rate = float(val_data["label"].mean())
        report["targets"][key] = {"policies": policies, "trivial": bool(target <= base_rate)}

    # matched test precision: each policy's test PR curve over a grid of validation targets
    grid = tuple(sorted(set(TARGET_GRID) | set(targets)))
    curves = {}
    for policy in POLICIES:
        curves[policy] = pr_curve_for_policy(policy, val_data, test_data, grid, edges, min_positives=min_positives,
                                             bin_size=bin_size, head=head)
    curves["placebo"] = pr_curve_for_policy("dp", val_data, test_data, grid, edges, min_positives=min_positives,
                                            bin_size=bin_size, head=head, val_bucket=placebo_val,
                                            test_bucket=placebo_test)
    _, exact_precision, exact_recall = score_pr_curve(test_data["score"], test_data["label"])
    for target in targets:
        for policy in REPORT_POLICIES:
            if policy == BASELINE:
                matched = recall_at_precision(exact_precision, exact_recall, target)
            else:
                matched = recall_at_precision(curves[policy]["precision"], curves[policy]["recall"], target)
            report["targets"][str(target)]["policies"][policy]["recall_at_matched_precision"] = matched
    curves["global_exact"] = {"precision": _thin(exact_precision, EXACT_CURVE_POINTS),
                              "recall": _thin(exact_recall, EXACT_CURVE_POINTS)}
    report["grid"] = list(grid)
    report["curves"] = curves

    if plot_dir is not None:
        report["plots"] = _write_plots(head, plot_dir, test_data, test_bucket, curves, targets,
                                       report["tables"][str(max(targets))]["dp"]["thresholds"])
    return _json_safe(report)


def _write_plots(head: str, plot_dir, test: dict, test_bucket: np.ndarray, curves: dict, targets: Sequence[float],
                 dp_thresholds: list) -> dict[str, str]:
    """The three PNGs of a head, on test data; returns {name: file name}."""
    plot_dir = Path(plot_dir)
    names = {"positive_rate_by_bucket": f"{head}_positive_rate_by_bucket.png",
             "reliability": f"{head}_reliability.png", "pr_curves": f"{head}_pr_curves.png"}
    plot_positive_rate_by_bucket(test["score"], test_bucket, test["label"], plot_dir / names["positive_rate_by_bucket"],
                                 thresholds=[float(t) for t in dp_thresholds])
    plot_reliability(test["score"], test["label"], plot_dir / names["reliability"])
    pr = {"global (exact)": (curves["global_exact"]["precision"], curves["global_exact"]["recall"])}
    pr.update({p: (curves[p]["precision"], curves[p]["recall"]) for p in REPORT_POLICIES if p != BASELINE})
    plot_pr_curves(pr, plot_dir / names["pr_curves"], targets)
    return names


def threshold_tables(report: dict) -> dict[str, dict[str, "ThresholdTable"]]:
    """{target: {policy: ThresholdTable}} rebuilt from a report (e.g. to save the one served)."""
    from tfrs_app.decision.thresholds import ThresholdTable

    return {target: {policy: ThresholdTable.from_dict(d, f"report {report.get('head')} {target} {policy}")
                     for policy, d in by_policy.items()}
            for target, by_policy in report["tables"].items()}


def _num(value, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ci(ci, digits: int = 3, signed: bool = False) -> str:
    return f"[{_num(ci[0], digits, signed)}, {_num(ci[1], digits, signed)}]"


def format_threshold_report(report: dict) -> str:
    """Compact Markdown: one metrics line, then per target a table of policy | test precision
    [CI] | test recall [CI] | recall gain vs global [CI] | recall at matched precision, the last
    with the paired matched-precision gain and its CI (* = that CI lies above 0)."""
    lines = [f"### {report['head']}: decision thresholds (fitted on val, n={report['n_val']}; "
             f"measured on test, n={report['n_test']})", ""]
    m = report["metrics"]
    lines.append("metrics: " + "; ".join(
        f"{split} AUC {_num(m[split]['auc'])}, PR-AUC {_num(m[split]['pr_auc'])}, "
        f"log loss {_num(m[split]['log_loss'])}, ECE {_num(m[split]['ece'])}" for split in ("val", "test")))
    level = int(round(100 * (1 - report.get("alpha", 0.05))))
    for target, block in report["targets"].items():
        note = (" (at or below the validation base rate: selecting everything meets it, so the policies can "
                "only tie)") if block.get("trivial") else ""
        lines += ["", f"target precision {target}{note}:", "",
                  f"| policy | test precision [{level}% CI] | test recall [{level}% CI] | "
                  f"recall gain vs global [{level}% CI] | recall at matched precision (gain [{level}% CI]) |",
                  "| --- | --- | --- | --- | --- |"]
        for policy, entry in block["policies"].items():
            test = entry["test"]
            matched = _num(entry.get("recall_at_matched_precision"))
            if "recall_diff_vs_global" in entry:
                diff = entry["recall_diff_vs_global"]
                gain = f"{_num(diff['point'], signed=True)} {_ci(diff['ci'], signed=True)}"
                if "matched_gain_vs_global" in entry:
                    mg = entry["matched_gain_vs_global"]
                    matched += f" ({_num(mg['point'], signed=True)} {_ci(mg['ci'], signed=True)}"
                    matched += " *)" if mg["significant"] else ")"
            else:
                gain = "(baseline)"
            fallback = f" (fallback: {entry['fallback']})" if entry.get("fallback") else ""
            lines.append(f"| {policy}{fallback} | {_num(test['precision'])} {_ci(test['precision_ci'])} | "
                         f"{_num(test['recall'])} {_ci(test['recall_ci'])} | {gain} | {matched} |")
    lines += ["", "recall at matched precision: the best test recall among the policy's fits at a grid of "
              "validation targets whose test precision reaches the target (global: its exact test PR curve). "
              "gain: paired bootstrap of the policy's test recall minus the best global threshold's at the "
              "policy's own test precision; * = its CI lies above 0. A recall gain at a lower precision is a "
              "trade, not a gain."]
    return "\n".join(lines) + "\n"


def format_threshold_summary(reports: Mapping[str, dict], targets: Mapping[str, float],
                             policies: Sequence[str] = ("global", "dp", "mist", "placebo")) -> str:
    """One Markdown table over heads, each at its own target: test precision and recall, and
    the gain over the global threshold as raw recall and at matched precision (* = CI above 0)."""
    lines = ["| head | target | policy | test precision | test recall | recall vs global [95% CI] | "
             "gain at matched precision [95% CI] |", "|---" * 7 + "|"]
    for head, report in reports.items():
        key = min(report["targets"], key=lambda t: abs(float(t) - targets[head]))
        for policy in policies:
            entry = report["targets"][key]["policies"].get(policy)
            if entry is None:
                continue
            diff, matched = "(baseline)", ""
            if "recall_diff_vs_global" in entry:
                d = entry["recall_diff_vs_global"]
                diff = f"{_num(d['point'], signed=True)} {_ci(d['ci'], signed=True)}"
                m = entry.get("matched_gain_vs_global")
                if m is not None:
                    matched = f"{_num(m['point'], signed=True)} {_ci(m['ci'], signed=True)}" + (" *" if m["significant"] else "")
            lines.append(f"| {head} | {key} | {policy} | {_num(entry['test']['precision'])} | "
                         f"{_num(entry['test']['recall'])} | {diff} | {matched} |")
    return "\n".join(lines)
