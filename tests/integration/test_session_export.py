"""Session recommendations exported (issue 10): a run with only a session model exports
session_recommender and session_recommender_scann under one new version, listed in TF Serving's
models.config, with warmup records, metadata and the titles of the run's catalog; ``tfrs-app
recommend --session`` prints the list, and ``tfrs-app train-sessions`` trains and reports. A tiny
synthetic session log (200 users, 100 items), one epoch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfrs_app  # noqa: F401

TINY = ["data.source=synthetic_sequential", "data.split=session", "data.sequential.num_users=200",
        "data.sequential.num_items=100", "data.sequential.num_clusters=5", "sessions.epochs=1",
        "sessions.hidden_sizes=[16]", "sessions.num_sampled_negatives=64"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run_dir, TrainedSessions, first export's paths, second export's paths): a sessions-only
    run, exported twice into one base dir."""
    from tfrs_app.config import load_config
    from tfrs_app.sequences.train import load_trained_sessions, run
    from tfrs_app.stages import export

    root = tmp_path_factory.mktemp("session_export")
    run_dir = root / "run"
    run(load_config(None, [f"run_dir={run_dir}", f"export.base_dir={root / 'saved_models'}", *TINY]))
    first = export(run_dir)  # base dir from the sessions stage's config: the run has nothing else
    return run_dir, load_trained_sessions(run_dir), first, export(run_dir)


def test_a_sessions_only_run_publishes_both_models_under_a_new_version(exported):
    from tfrs_app.data.prepare import load_data
    from tfrs_app.serving.load import metadata
    from tfrs_app.serving.sessions import CATALOG
    from tfrs_app.serving.tf_serving import read_warmup, replay_warmup

    run_dir, trained, first, second = exported
    names = ["session_recommender", "session_recommender_scann"]
    assert sorted(first) == sorted(second) == names
    assert {Path(p).name for p in first.values()} == {"1"} and {Path(p).name for p in second.values()} == {"2"}
    base = Path(second["session_recommender"]).parents[1]
    config, stock = (base / "models.config").read_text(), (base / "models.stock.config").read_text()
    assert 'name: "session_recommender"' in config and 'name: "session_recommender_scann"' in config
    assert 'name: "session_recommender"' in stock and "session_recommender_scann" not in stock
    catalog = load_data(run_dir).catalog
    titles = dict(zip(catalog["item_id"].astype(str), catalog["item_title"].astype(str)))
    vocabulary = [str(i) for i in trained.vocabulary.item_ids]
    for name, path in second.items():
        meta = metadata(path)
        assert meta["model"] == name and meta["k"] == min(trained.cfg.sessions.k, len(vocabulary))
        assert meta["num_candidates"] == len(vocabulary) and meta["requires_scann"] == (name == names[1])
        assert meta["inputs"] == ["session_items"] and meta["outputs"] == ["item_ids", "scores", "known_items",
                                                                            "fallback"]
        assert (meta["index"] == "brute_force") == (name == names[0]) and meta["gru4rec"]["hidden_sizes"] == [16]
        (_, signature, request), = read_warmup(path)
        assert signature == "serving_default" and request["session_items"].shape == (2, 2)
        assert set(request["session_items"].astype(str).ravel()) - {""} <= set(vocabulary)
        saved = json.loads((Path(path) / CATALOG).read_text())
        assert saved["item_ids"] == vocabulary and saved["titles"] == [titles[i] for i in vocabulary]
    assert replay_warmup(second["session_recommender"]) == 1
    assert json.loads((run_dir / "exports.json").read_text())["session_recommender"] == second["session_recommender"]


def test_the_scann_export_answers_like_the_exact_one(exported):
    from tfrs_app.serving.sessions import SessionRecommendations

    _, trained, _, second = exported
    ids = [str(i) for i in trained.vocabulary.item_ids]
    sessions = [ids[:3], [ids[5], "nope", ids[9]], ["nope"], ids[:60] * 3]
    exact = SessionRecommendations.load(second["session_recommender"]).recommend_batch(sessions)
    approx = SessionRecommendations.load(second["session_recommender_scann"]).recommend_batch(sessions)
    for e, a, session in zip(exact, approx, sessions):
        assert (a.known_items, a.fallback) == (e.known_items, e.fallback)
        assert len(a.items) == len(e.items) == trained.cfg.sessions.k and not {i.item_id for i in a.items} & set(session)
        assert len({i.item_id for i in a.items} & {i.item_id for i in e.items}) >= 0.8 * len(e.items)
        np.testing.assert_allclose(sorted(i.score for i in a.items)[-1], sorted(i.score for i in e.items)[-1], atol=1e-4)
    assert exact[2].fallback and exact[1].unknown == ["nope"] and exact[3].known_items == 180


def run_cli(*args: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("tfrs-app")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_recommend_session_prints_the_list(exported):
    from tfrs_app.serving.sessions import SessionRecommendations

    _, trained, _, second = exported
    base = Path(second["session_recommender"]).parents[1]  # a folder of models: its session_recommender is used
    ids = [str(i) for i in trained.vocabulary.item_ids]
    expected = SessionRecommendations.load(second["session_recommender"]).recommend([ids[4], ids[2]], k=4)
    done = run_cli("recommend", "--session", ids[4], "nope", ids[2], "--k", "4", "--model", str(base))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "2 known to the model; fallback: no" in lines[0] and any(line.startswith("unknown item nope") for line in lines)
    table = lines[lines.index(next(line for line in lines if line.lstrip().startswith("rank"))) + 1:]
    assert len(table) == 4
    for rank, (line, item) in enumerate(zip(table, expected.items), 1):
        cells = line.split()
        assert cells[0] == str(rank) and cells[1] == item.item_id and item.title and item.title in line
        assert float(cells[2]) == pytest.approx(item.score, abs=1e-4)


def test_cli_recommend_session_errors_are_named(exported, capsys):
    from tfrs_app.cli import main

    _, _, _, second = exported
    model = second["session_recommender"]
    cases = [(["--user", "u1", "--session", "i1"], "not both"), (["--json"], "one of them"),
             (["--session", "i1", "--history", "i2", "--model", model], "--history: only with --user"),
             (["--session", "i1", "--k", "0", "--model", model], "--k: must be >= 1"),
             (["--session", "i1", "--model", str(Path(model).parents[2])], "no session model here")]
    for args, message in cases:
        assert main(["recommend", *args]) == 2
        assert message in capsys.readouterr().err, args
    assert main(["recommend", "--session", "nope", "--model", model, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fallback"] and result["known_items"] == 0 and result["items"]


def test_cli_train_sessions_trains_and_prints_the_report(tmp_path, capsys):
    from tfrs_app.cli import main

    run_dir = tmp_path / "cli_run"
    assert main(["train-sessions", *[arg for item in TINY for arg in ("--set", item)], "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "gru4rec" in out and "session_knn" in out and f"run directory: {run_dir}" in out
    assert (run_dir / "sessions" / "checkpoint").is_dir()
