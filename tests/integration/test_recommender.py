"""The end-to-end recommender on the demo run: retrieve -> drop seen -> rank -> gate -> blend -> MMR."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_app.config import HEADS


@pytest.fixture(scope="module")
def recommender(ranker_run):
    from tfrs_app.stages import export_recommender, recommender_server

    run_dir = ranker_run[0]
    paths = export_recommender(run_dir)
    return run_dir, recommender_server(run_dir), {k: Path(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def users(trained_run):
    """60 test users with their full seen lists (train + val, most recent first) and features."""
    _, trained, _ = trained_run
    splits = trained.splits
    known = pd.concat([splits.train, splits.val], ignore_index=True)
    firsts = splits.test.drop_duplicates("user_id")
    firsts = firsts[firsts["user_id"].isin(known["user_id"])].head(60)
    seen = known.groupby("user_id")["item_id"].apply(lambda s: list(s)[::-1])
    return {"user_id": list(firsts["user_id"]), "timestamp": [int(t) for t in firsts["timestamp"]],
            "history": [seen[u] for u in firsts["user_id"]], "user_segment": list(firsts["user_segment"])}


def request(users: dict):
    from tfrs_app.serving.load import query_request

    return query_request(users["user_id"], users["timestamp"], users["history"], {"user_segment": users["user_segment"]})


def rounded(value, places: int = 5):
    """Floats rounded: multi-threaded reductions may differ in the last bits between calls."""
    if isinstance(value, dict):
        return {k: rounded(v, places) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, places) for v in value]
    return round(value, places) if isinstance(value, float) else value


def numpy(out: dict) -> dict:
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def answered(recommender, users):
    _, server, _ = recommender
    return numpy(server.serve(request(users)))


def test_no_seen_item_is_recommended(answered, users):
    assert (answered["num_results"] == 10).all()
    for row, history in enumerate(users["history"]):
        items = {i.decode() for i in answered["item_ids"][row] if i}
        assert not items & set(history), row
        assert len(items) == 10  # no duplicates
    status = answered["candidate_status"]
    assert (status == b"seen").sum() > 0  # the long histories did hit retrieved items


def test_no_item_failing_the_responsibility_decision_is_recommended(answered):
    listed = answered["item_ids"] != b""
    assert answered["responsibility_decision"][listed].all()
    dropped = (answered["candidate_status"] == b"responsibility").sum()
    assert dropped > 0, "the gate never fired: the test would not catch a broken gate"


def test_unsafe_items_are_kept_out(answered, trained_run):
    """Ground truth: the planted unsafe items are 5% of the catalog; the gate keeps them out."""
    from dataclasses import asdict

    from tfrs_app.data.synthetic import generate

    _, trained, _ = trained_run
    truth = generate(**asdict(trained.cfg.data.synthetic)).truth
    unsafe = set(truth.item_ids[truth.unsafe])
    recommended = [i.decode() for i in answered["item_ids"].ravel() if i]
    assert sum(i in unsafe for i in recommended) / len(recommended) <= 0.01
    retrieved = [i.decode() for i in answered["candidate_item_ids"].ravel()]
    assert sum(i in unsafe for i in retrieved) / len(retrieved) >= 0.02  # retrieval alone would show them


def intra_list_diversity(item_ids: np.ndarray, vectors: dict) -> float:
    """Mean over lists of the mean pairwise (1 - cosine) of the listed items."""
    values = []
    for row in item_ids:
        v = np.stack([vectors[i.decode()] for i in row if i])
        sims = v @ v.T
        n = len(v)
        values.append(1.0 - (sims.sum() - n) / (n * (n - 1)))
    return float(np.mean(values))


def test_mmr_buys_diversity_for_a_bounded_loss_in_blended_score(recommender, users, trained_run):
    from tfrs_app.serving.recommender import RecommenderServer
    from tfrs_app.stages import candidate_embeddings

    _, server, _ = recommender
    _, trained, _ = trained_run
    embeddings, ids = candidate_embeddings(trained)
    vectors = dict(zip(ids, embeddings))
    plain = RecommenderServer.__new__(RecommenderServer)
    plain.__dict__.update(server.__dict__)
    plain.blend = replace(server.blend, mmr_lambda=1.0)
    plain.serve = __import__("tensorflow").function(plain._serve)
    ranked = numpy(plain.serve(request(users)))
    diverse = numpy(server.serve(request(users)))
    assert server.blend.mmr_lambda == 0.7
    gain = intra_list_diversity(diverse["item_ids"], vectors) - intra_list_diversity(ranked["item_ids"], vectors)
    loss = 1.0 - diverse["score"].sum(axis=1).mean() / ranked["score"].sum(axis=1).mean()
    assert gain >= 0.05, gain  # measured on the demo run: see README
    assert 0.0 <= loss <= 0.10, loss
    # plain ranking is ordered by the blended score
    assert (np.diff(ranked["score"], axis=1) <= 1e-6).all()


FRESH = r"""
import sys, json, numpy as np, tensorflow as tf
if sys.argv[3] == "scann":
    import scann  # registers the ScaNN ops
path, inputs, out = sys.argv[1], sys.argv[2], sys.argv[4]
model = tf.saved_model.load(path)
data = dict(np.load(inputs, allow_pickle=False))
result = model.signatures["serving_default"](**{k: tf.constant(v) for k, v in data.items()})
np.savez(out, **{k: (v.numpy().astype("S") if v.dtype == tf.string else v.numpy()) for k, v in result.items()})
print("modules:", sorted(m for m in sys.modules if m.split(".")[0] in ("tfrs_app", "tensorflow_recommenders")))
"""


@pytest.mark.parametrize("variant", ["recommender", "recommender_scann"])
def test_saved_recommender_answers_in_a_fresh_process(recommender, users, answered, variant, tmp_path):
    _, _, paths = recommender
    inputs = {k: v.numpy() for k, v in request(users).items()}
    np.savez(tmp_path / "in.npz", **{k: (v.astype("U") if v.dtype.kind in "SO" else v) for k, v in inputs.items()})
    kind = "scann" if variant.endswith("scann") else "stock"
    result = subprocess.run([sys.executable, "-c", FRESH, str(paths[variant]), str(tmp_path / "in.npz"), kind,
                             str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modules: []" in result.stdout
    out = np.load(tmp_path / "out.npz")
    if kind == "stock":  # exact retrieval: the same answers as in process
        np.testing.assert_array_equal(out["item_ids"], answered["item_ids"])
        np.testing.assert_allclose(out["score"], answered["score"], atol=1e-5)
        for head in HEADS:
            np.testing.assert_array_equal(out[f"{head}_decision"], answered[f"{head}_decision"])
    else:  # approximate retrieval, tuned to recall@R >= 0.95: nearly the same candidates, similar lists
        candidates = np.mean([len(set(a) & set(b)) / len(b) for a, b in
                              zip(out["candidate_item_ids"], answered["candidate_item_ids"])])
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(out["item_ids"], answered["item_ids"])])
        assert candidates >= 0.95, candidates
        assert overlap >= 0.8, overlap
    assert (out["num_results"] == 10).all()


def test_saved_model_cli_runs_the_recommender(recommender):
    _, _, paths = recommender
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "run", "--dir", str(paths["recommender"]), "--tag_set", "serve",
                            "--signature_def", "serving_default", "--input_exprs",
                            'user_id=["nobody"];timestamp=[1609459200];history=[["i7","i12"]];user_segment=["segment1"]'],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "Result for output key item_ids" in shown.stdout and "unknown_user_with_history" in shown.stdout


def test_warmup_records_parse_and_replay(recommender, ranker_run):
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401  (what TF Serving parses)

    from tfrs_app.serving.tf_serving import read_warmup, replay_warmup

    _, _, paths = recommender
    for path in (paths["recommender"], paths["recommender_scann"], ranker_run[4]):
        records = read_warmup(path)
        assert records and all(name in ("recommender", "recommender_scann", "ranker") for name, _, _ in records)
        assert replay_warmup(path) == len(records)
    signatures = {sig for _, sig, _ in read_warmup(ranker_run[4])}
    assert signatures == {"serving_default", "predict_with_uncertainty"}


def test_models_config_lists_every_export(recommender):
    from tfrs_app.serving.tf_serving import write_models_config

    base = recommender[2]["recommender"].parents[1]
    config = write_models_config(base).read_text()
    for name in ("recommender", "recommender_scann", "ranker"):
        assert f'name: "{name}"' in config and f'base_path: "/models/{name}"' in config
    stock = (base / "models.stock.config").read_text()
    assert 'name: "recommender"' in stock and "scann" not in stock


def test_cold_start_and_odd_histories_are_served_and_labelled(recommender):
    from tfrs_app.serving.recommender import Recommender

    _, server, _ = recommender
    rec = Recommender.from_server(server)
    known_user = server.query_tower.user.lookup.get_vocabulary()[5]
    cases = {
        ("nobody", ()): "cold_start",
        ("nobody", ("i7", "i12")): "unknown_user_with_history",
        (known_user, ()): "known_user_no_history",
        (known_user, ("not-an-item", "i7")): "personalized",
    }
    for (user, history), path in cases.items():
        result = rec.recommend(user, history, 1609459200, {"user_segment": "segment1"})
        assert result.path == path, (user, history, result.path)
        assert len(result.items) == 10
        assert not {i.item_id for i in result.items} & set(history)
    with pytest.raises(ValueError, match="timestamp"):
        rec.recommend("u1", (), "yesterday")
    with pytest.raises(ValueError, match="history"):
        rec.recommend_batch(["u1"], ["i7"])
    with pytest.raises(ValueError, match="user_features"):
        rec.recommend("u1", (), 1609459200, {"user_age": "30"})


def test_wrong_dtype_in_a_raw_request_is_refused(recommender):
    import tensorflow as tf

    _, _, paths = recommender
    from tfrs_app.serving.load import load_saved_model

    signature = load_saved_model(paths["recommender"]).signatures["serving_default"]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(user_id=tf.constant(["u1"]), timestamp=tf.constant(["2021-01-01"]),
                  history=tf.constant([[""]]), user_segment=tf.constant(["segment1"]))


def test_threads_get_the_sequential_answers(recommender, users):
    from tfrs_app.serving.recommender import Recommender

    _, _, paths = recommender
    rec = Recommender.load(paths["recommender"])
    args = [(u, h[:30], t, {"user_segment": s}) for u, h, t, s in
            zip(users["user_id"][:16], users["history"], users["timestamp"], users["user_segment"])]
    sequential = [rounded(rec.recommend(*a).to_dict()) for a in args]
    results = [None] * len(args)

    def work(i):
        results[i] = rounded(rec.recommend(*args[i]).to_dict())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == sequential


def test_a_new_version_leaves_the_old_one_answering(recommender, ranker_run, users):
    from tfrs_app.serving.recommender import Recommender
    from tfrs_app.stages import export_recommender

    _, _, paths = recommender
    old = Recommender.load(paths["recommender"])
    before = rounded(old.recommend(users["user_id"][0], users["history"][0][:20]).to_dict())
    new_paths = export_recommender(ranker_run[0])
    assert Path(new_paths["recommender"]).name == str(int(paths["recommender"].name) + 1)
    again = Recommender.load(paths["recommender"])  # the old version folder, untouched
    assert rounded(again.recommend(users["user_id"][0], users["history"][0][:20]).to_dict()) == before
    assert rounded(old.recommend(users["user_id"][0], users["history"][0][:20]).to_dict()) == before


def test_missing_or_corrupt_recommender_gives_a_clear_error(tmp_path, recommender):
    import shutil

    from tfrs_app.serving.errors import ModelLoadError
    from tfrs_app.serving.recommender import Recommender

    with pytest.raises(ModelLoadError, match="no such SavedModel"):
        Recommender.load(tmp_path / "nothing")
    broken = tmp_path / "recommender" / "1"
    shutil.copytree(recommender[2]["recommender"], broken)
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError, match="cannot load"):
        Recommender.load(broken)


def test_cli_recommend_and_inspect(recommender, capsys):
    from tfrs_app.cli import main

    _, _, paths = recommender
    assert main(["recommend", "--model", str(paths["recommender"]), "--user", "nobody", "--history", "i7",
                 "--feature", "user_segment=segment1", "--timestamp", "1609459200"]) == 0
    table = capsys.readouterr().out
    assert "path unknown_user_with_history; 10 items" in table and "The " in table
    assert main(["recommend", "--model", str(paths["recommender"]), "--user", "nobody", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == "cold_start" and len(data["items"]) == 10
    assert set(data["items"][0]) >= {"item_id", "title", "score", *HEADS}
    assert main(["inspect", str(paths["recommender"].parent.parent)]) == 0
    shown = capsys.readouterr().out
    assert "recommender_scann" in shown and "needs ScaNN ops" in shown and "signature serving_default" in shown
    assert main(["recommend", "--model", "/nonexistent", "--user", "x"]) == 2
    assert "no such SavedModel" in capsys.readouterr().err


def test_in_process_scann_recommender_serves_a_batch(recommender, users):
    """ScaNN's op has no static shape; a batch must still trace (and drop seen items)."""
    from tfrs_app.stages import recommender_server

    server = recommender_server(recommender[0], scann=True)
    out = numpy(server.serve(request(users)))
    assert (out["num_results"] == 10).all()
    for row, history in enumerate(users["history"]):
        assert not {i.decode() for i in out["item_ids"][row]} & set(history)
