"""End to end on the demo data: train the ranker -> calibrate thresholds -> export -> fresh process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_app.config import HEADS


def test_ranker_beats_the_item_prior(ranker_run):
    _, _, metrics, _, _ = ranker_run
    test = metrics["test"]
    # engagement: planted user-item affinity, which an item prior cannot see
    assert test["engagement"]["model"]["auc"] >= test["engagement"]["item_prior"]["auc"] + 0.25, test["engagement"]
    # satisfaction: affinity + item quality; the prior knows only the quality
    assert test["satisfaction"]["model"]["auc"] >= test["satisfaction"]["item_prior"]["auc"] + 0.01, test["satisfaction"]
    # responsibility is a property of the item (planted unsafe items): the prior is the right model; match it
    assert test["responsibility"]["model"]["auc"] >= test["responsibility"]["item_prior"]["auc"] - 0.02
    for head in HEADS:
        assert test[head]["model"]["ece"] < 0.05, (head, test[head]["model"])


def test_ranker_run_directory(ranker_run):
    run_dir, cfg, metrics, reports, _ = ranker_run
    stage = run_dir / "ranker"
    assert not (stage / "backup").exists()
    assert list((run_dir / "logs" / "ranker").rglob("events.out.tfevents.*"))
    assert len(metrics["history"]["loss"]) == cfg.ranker.epochs
    val = pd.read_parquet(stage / "predictions" / "val.parquet")
    assert val["satisfaction_label"][~val["is_logged"]].isna().all()  # impressions: satisfaction unknown
    assert (val["engagement_label"][~val["is_logged"]] == 0).all()
    assert (val["satisfaction_std"] > 0).mean() > 0.99
    for head in HEADS:
        report = reports[head]
        assert set(report["targets"]["0.9"]["policies"]) == {"global", "isotonic", "dp", "mist", "placebo"}
        for name in report["plots"].values():
            png = stage / "plots" / name
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert json.loads((stage / "report.json").read_text()).keys() == set(HEADS)
    assert "recall gain vs global" in (stage / "report.md").read_text()


def test_reloaded_ranker_predicts_identically(ranker_run):
    from tfrs_app.ranking.train import load_trained_ranker, split_examples
    from tfrs_app.ranking.uncertainty import predict

    run_dir, cfg, _, _, _ = ranker_run
    again = load_trained_ranker(run_dir)
    features = split_examples(cfg, again.data, "test").model_features()
    frame = pd.read_parquet(run_dir / "ranker" / "predictions" / "test.parquet")
    predicted = predict(again.model, features)
    for head in HEADS:
        np.testing.assert_allclose(predicted[head]["score"], frame[f"{head}_det"].to_numpy(), atol=1e-5)


FRESH = r"""
import sys, numpy as np, tensorflow as tf
path, inputs, out = sys.argv[1:4]
model = tf.saved_model.load(path)
data = dict(np.load(inputs, allow_pickle=False))
request = {k: tf.constant(v) for k, v in data.items()}
det = model.signatures["serving_default"](**request)
mc = model.signatures["predict_with_uncertainty"](**request)
mc_again = model.signatures["predict_with_uncertainty"](**request)
np.savez(out, **{f"det_{k}": v.numpy() for k, v in det.items()}, **{f"mc_{k}": v.numpy() for k, v in mc.items()},
         **{f"again_{k}": v.numpy() for k, v in mc_again.items()})
print("modules:", sorted(m for m in sys.modules if m.split(".")[0] in ("tfrs_app", "tensorflow_recommenders", "scann")))
"""


def test_saved_ranker_matches_keras_in_a_fresh_process(ranker_run, tmp_path):
    import tfrs_app  # noqa: F401
    import tensorflow as tf

    from tfrs_app.ranking.calibrate import load_tables
    from tfrs_app.ranking.train import load_trained_ranker, split_examples
    from tfrs_app.ranking.uncertainty import mc_logits, summarize

    run_dir, cfg, _, _, path = ranker_run
    trained = load_trained_ranker(run_dir)
    features = {k: v[:300] for k, v in split_examples(cfg, trained.data, "test").model_features().items()}
    np.savez(tmp_path / "in.npz", **{k: (v.astype("U") if v.dtype.kind == "S" else v) for k, v in features.items()})
    result = subprocess.run([sys.executable, "-c", FRESH, str(path), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modules: []" in result.stdout  # TensorFlow alone serves it, as TF Serving would
    out = np.load(tmp_path / "out.npz")
    request = {k: tf.constant(v) for k, v in features.items()}
    keras = trained.model(request, training=False)
    sampled = mc_logits(trained.model, request, cfg.ranker.mc_samples, cfg.seed)
    tables = load_tables(run_dir)
    for head in HEADS:
        np.testing.assert_allclose(out[f"det_{head}"], tf.sigmoid(keras[head]).numpy(), atol=1e-5)
        mean, std = (t.numpy() for t in summarize(sampled[head]))
        np.testing.assert_allclose(out[f"mc_{head}_mean"], mean, atol=1e-5)
        np.testing.assert_allclose(out[f"mc_{head}_std"], std, atol=1e-5)
        np.testing.assert_array_equal(out[f"mc_{head}_mean"], out[f"again_{head}_mean"])  # fixed seed: repeatable
        table = tables[head]
        saved_mean, saved_std = out[f"mc_{head}_mean"].astype(np.float64), out[f"mc_{head}_std"].astype(np.float64)
        np.testing.assert_array_equal(out[f"mc_{head}_bucket"], table.bucket(saved_std))
        np.testing.assert_array_equal(out[f"mc_{head}_decision"], table.decide(saved_mean, saved_std))
    decisions = out["mc_responsibility_decision"]  # the gate: most items pass, the riskiest do not
    assert decisions.mean() > 0.5 and not decisions.all()


def test_saved_model_cli_lists_both_signatures(ranker_run):
    _, _, _, _, path = ranker_run
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", str(path), "--all"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "signature_def['serving_default']" in shown.stdout
    assert "signature_def['predict_with_uncertainty']" in shown.stdout
    assert "satisfaction_decision" in shown.stdout and "responsibility_bucket" in shown.stdout
    meta = json.loads((path / "assets.extra" / "tfrs_app.json").read_text())
    assert meta["requires_scann"] is False and meta["mc_samples"] == 30


def test_ranker_cli_errors_name_the_problem(tmp_path, capsys):
    from tfrs_app.cli import main

    assert main(["calibrate-thresholds", "--run-dir", str(tmp_path)]) == 2
    assert "no trained ranker" in capsys.readouterr().err
    assert main(["train-ranker", "--set", "ranker.mc_samples=1", "--run-dir", str(tmp_path)]) == 2
    assert "ranker.mc_samples" in capsys.readouterr().err
    assert main(["train-ranker", "--set", "ranker.decision_targets.satisfaction=1.5", "--run-dir", str(tmp_path)]) == 2
    assert "ranker.decision_targets.satisfaction" in capsys.readouterr().err


def test_responsibility_gate_blocks_the_planted_unsafe_items(ranker_run):
    """Ground truth from the generator: the served responsibility table (fitted on val at
    precision 0.96) must block most test events of unsafe items and almost none of safe ones."""
    from dataclasses import asdict

    from tfrs_app.data.synthetic import generate
    from tfrs_app.ranking.calibrate import load_tables

    run_dir, cfg, _, _, _ = ranker_run
    truth = generate(**asdict(cfg.data.synthetic)).truth
    unsafe = dict(zip(truth.item_ids, truth.unsafe))
    test = pd.read_parquet(run_dir / "ranker" / "predictions" / "test.parquet")
    test = test[test["is_logged"]]
    passed = load_tables(run_dir)["responsibility"].decide(test["responsibility_score"].to_numpy(),
                                                           test["responsibility_std"].to_numpy())
    is_unsafe = test["item_id"].map(unsafe).to_numpy(bool)
    assert is_unsafe.sum() > 100
    assert (~passed[is_unsafe]).mean() >= 0.8, (~passed[is_unsafe]).mean()
    assert (~passed[~is_unsafe]).mean() <= 0.02, (~passed[~is_unsafe]).mean()


def test_the_protocol_credits_no_placebo_gain(ranker_run):
    """Random buckets carry no information: at matched precision they must not beat the global
    threshold significantly, for any head and target (what the matched comparison is for)."""
    _, _, _, reports, _ = ranker_run
    for head, report in reports.items():
        for target, block in report["targets"].items():
            placebo = block["policies"]["placebo"]
            assert placebo["matched_gain_vs_global"]["significant"] is False, (head, target, placebo)
