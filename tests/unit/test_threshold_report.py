import json

import numpy as np
import pytest

from tfrs_app.decision.thresholds import ThresholdTable
from tfrs_app.evaluation.report import format_threshold_report, threshold_report, threshold_tables


def planted(n: int, seed: int) -> dict:
    """Heteroscedastic scores: the logit noise grows with std, so a high score is less
    trustworthy in a high-std bucket (it needs a higher threshold), and a low-std bucket can
    take a lower one. Labels follow the noiseless probability."""
    rng = np.random.default_rng(seed)
    std = rng.uniform(0, 0.3, n)
    logit = rng.normal(0.5, 2.5, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    score = 1 / (1 + np.exp(-(logit + 10 * std * rng.normal(size=n))))
    return {"score": score, "std": std, "label": label}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    plot_dir = tmp_path_factory.mktemp("plots")
    result = threshold_report("engagement", planted(40000, 0), planted(40000, 1), targets=(0.8, 0.9),
                              num_bootstrap=300, seed=0, plot_dir=plot_dir)
    return result, plot_dir


def test_dp_beats_global_on_planted_heteroscedasticity(report):
    result, _ = report
    policies = result["targets"]["0.9"]["policies"]
    dp, base = policies["dp"], policies["global"]
    assert dp["test"]["recall"] > base["test"]["recall"]
    assert dp["recall_diff_vs_global"]["significant"] is True
    assert dp["recall_diff_vs_global"]["ci"][0] > 0
    assert abs(dp["test"]["precision"] - 0.9) <= 0.02  # the bound
    # a real gain: above the global PR curve at dp's own test precision, and at matched precision
    assert dp["matched_gain_vs_global"]["significant"] is True
    assert dp["recall_at_matched_precision"] > base["recall_at_matched_precision"]
    assert policies["mist"]["matched_gain_vs_global"]["significant"] is True


def test_placebo_shows_no_gain(report):
    result, _ = report
    for target in ("0.8", "0.9"):
        placebo = result["targets"][target]["policies"]["placebo"]
        assert placebo["matched_gain_vs_global"]["significant"] is False
        assert placebo["recall_at_matched_precision"] <= result["targets"][target]["policies"]["dp"][
            "recall_at_matched_precision"]


def test_report_structure_is_json_safe(report):
    result, _ = report
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN or Infinity
    assert result["n_val"] == 40000 and result["n_test"] == 40000
    assert len(result["edges"]) == 4 and sum(result["bucket_counts_val"]) == 40000
    assert set(result["metrics"]) == {"val", "test"} and 0.5 < result["metrics"]["test"]["auc"] < 1
    for target in ("0.8", "0.9"):
        policies = result["targets"][target]["policies"]
        assert set(policies) == {"global", "isotonic", "dp", "mist", "placebo"}
        assert "recall_diff_vs_global" not in policies["global"]
        for name, entry in policies.items():
            assert len(entry["thresholds"]) == 5
            lo, hi = entry["test"]["recall_ci"]
            assert lo <= entry["test"]["recall"] <= hi
    for name in ("global", "isotonic", "dp", "mist", "placebo"):
        curve = result["curves"][name]
        assert len(curve["precision"]) == len(curve["recall"]) == len(result["grid"])
    assert 0.9 in result["grid"] and 0.8 in result["grid"]


def test_tables_can_be_served(report):
    result, _ = report
    tables = threshold_tables(result)
    table = tables["0.9"]["dp"]
    assert isinstance(table, ThresholdTable) and table.policy == "dp" and table.target_precision == 0.9
    test = planted(40000, 1)
    selected = table.decide(test["score"], test["std"])
    assert test["label"][selected].mean() == pytest.approx(result["targets"]["0.9"]["policies"]["dp"]["test"]["precision"])
    assert set(result["tables"]["0.8"]) == {"global", "isotonic", "dp", "mist"}


def test_plots_are_written(report):
    result, plot_dir = report
    assert set(result["plots"]) == {"positive_rate_by_bucket", "reliability", "pr_curves"}
    for name in result["plots"].values():
        data = (plot_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list(plot_dir.glob(".*tmp"))  # no temporary leftovers


def test_format_threshold_report(report):
    result, _ = report
    text = format_threshold_report(result)
    assert "target precision 0.9" in text and "target precision 0.8" in text
    assert text.count("| dp |") == 2 and text.count("| placebo |") == 2
    assert "AUC" in text and "ECE" in text and "(baseline)" in text


def test_report_validates_inputs():
    val = planted(500, 3)
    with pytest.raises(ValueError, match="val.*std"):
        threshold_report("h", {k: v for k, v in val.items() if k != "std"}, val)
    bad = {**val, "label": np.where(np.arange(500) == 7, np.nan, val["label"])}
    with pytest.raises(ValueError, match="test: label.*index 7"):
        threshold_report("h", val, bad)
    with pytest.raises(ValueError, match="target_precision"):
        threshold_report("h", val, val, targets=(1.0,))


def test_small_report_with_fallback_runs_fast():
    val, test = planted(600, 4), planted(600, 5)
    result = threshold_report("satisfaction", val, test, targets=(0.9,), num_buckets=5, min_positives=80,
                              num_bootstrap=50)
    dp = result["targets"]["0.9"]["policies"]["dp"]
    assert len(dp["fallback"]) > 0  # ~60 positives per bucket < 80: every bucket falls back
    assert dp["thresholds"] == result["targets"]["0.9"]["policies"]["global"]["thresholds"]
    assert result["plots"] == {}
