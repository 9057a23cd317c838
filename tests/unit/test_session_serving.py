"""Session recommendations served (issue 10): the exported GRU4Rec server, loaded in a fresh
process that imports only TensorFlow, against the in-memory ``score_all(encode(...))`` with the
session's items excluded in numpy; unknown ids and "" skipped; the popularity fallback; a
1,000-item session; the ScaNN variant against exact; the client, the CLI table and the
recommender's routing of unknown users to the session model. A random 200-item model: no
training."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

NUM_ITEMS, K = 200, 10
IDS = np.array([f"item{j}" for j in range(NUM_ITEMS)])
LONG = list(IDS[np.random.default_rng(7).integers(0, 150, 1000)])  # 1,000 events over at most 150 items

CASES = {  # name: sessions (oldest first), one request each
    "basic": [list(IDS[[3, 40, 7]]), [IDS[0]], list(IDS[[9, 8, 7, 6, 5, 4]])],
    "with_unknown": [[IDS[3], "zzz", IDS[40]]],
    "without_unknown": [[IDS[3], IDS[40]]],
    "middle_padding": [[IDS[3], "", "", IDS[40], ""]],
    "empty": [["", ""]],
    "unknown_only": [["zzz", "yyy"]],
    "long": [LONG],
    "mixed_batch": [list(IDS[[3, 40, 7]]), ["", ""], LONG, ["zzz"]],
}


@pytest.fixture(scope="module")
def model():
    from tfrs_app.sequences.model import GRU4Rec

    gru = GRU4Rec(NUM_ITEMS, hidden_sizes=(16,), seed=3)
    gru.output_bias.assign(np.random.default_rng(5).normal(0.0, 0.5, NUM_ITEMS + 1).astype(np.float32))
    return gru


@pytest.fixture(scope="module")
def vocabulary():
    from tfrs_app.sequences.train import Vocabulary

    return Vocabulary(IDS.astype(object), np.random.default_rng(11).permutation(NUM_ITEMS) + 1.0)  # distinct counts


@pytest.fixture(scope="module")
def trained(model, vocabulary):
    from tfrs_app.config import load_config
    from tfrs_app.sequences.train import TrainedSessions

    return TrainedSessions(load_config(None, [f"sessions.k={K}"]), model, vocabulary)


@pytest.fixture(scope="module")
def server(trained):
    from tfrs_app.serving.sessions import SessionRecommenderServer

    return SessionRecommenderServer.from_trained(trained)


@pytest.fixture(scope="module")
def exported(server, tmp_path_factory) -> Path:
    from tfrs_app.serving.sessions import OUTPUTS, save_session_server

    path = tmp_path_factory.mktemp("session_export") / "1"
    save_session_server(server, path, {"model": "session_recommender", "k": server.k, "outputs": list(OUTPUTS)},
                        titles=[f"Title of {i}" for i in IDS])
    return path


FRESH = """
import sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
for name in sys.argv[2].split(","):
    request = np.load(f"{sys.argv[3]}/{name}.in.npz")
    out = model.signatures["serving_default"](session_items=tf.constant(request["session_items"]))
    np.savez(f"{sys.argv[3]}/{name}.out.npz", **{k: v.numpy() for k, v in out.items()})
assert "tfrs_app" not in sys.modules and "tensorflow_recommenders" not in sys.modules
"""


@pytest.fixture(scope="module")
def fresh(exported, tmp_path_factory) -> dict:
    """{case: outputs} of every CASES request, from the SavedModel in one fresh process."""
    from tfrs_app.serving.sessions import session_request

    folder = tmp_path_factory.mktemp("fresh")
    for name, sessions in CASES.items():
        np.savez(folder / f"{name}.in.npz", session_items=session_request(sessions)["session_items"].numpy().astype(str))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", FRESH, str(exported), ",".join(CASES), str(folder)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = {}
    for name in CASES:
        with np.load(folder / f"{name}.out.npz", allow_pickle=True) as values:  # our own file: strings are objects
            out[name] = {k: values[k] for k in values.files}
    return out


def expected(model, session) -> tuple[list, np.ndarray]:
    """(top-K ids, scores) of the in-memory model on a session's known items, its items excluded
    in numpy; None for a session with no known item."""
    rows = [int(np.flatnonzero(IDS == i)[0]) + 1 for i in session if i in set(IDS)]
    if not rows:
        return None
    output = model.encode(tf.constant([rows], tf.int64), tf.constant([len(rows)]))
    scores = model.score_all(output).numpy()[0].astype(np.float64)
    scores[np.array(rows) - 1] = -np.inf
    top = np.argsort(-scores, kind="stable")[:K]
    return list(IDS[top]), scores[top]


def assert_answer(model, session, ids, scores) -> None:
    """``ids`` [K] (bytes or str) and ``scores`` are the in-memory answer: the same scores in
    order (atol 1e-5), each item's own score, none of the session's items; an id differs only
    where two scores tie within 1e-5."""
    top, want = expected(model, session)
    got = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
    np.testing.assert_allclose(scores, want, atol=1e-5)
    assert not set(got) & set(session) and len(set(got)) == K
    close = np.abs(np.asarray(scores) - want) < 1e-5
    assert all(g == t or close[j] for j, (g, t) in enumerate(zip(got, top)))


def popular(vocabulary) -> tuple[list, np.ndarray]:
    order = np.argsort(-vocabulary.counts, kind="stable")[:K]
    return list(IDS[order]), vocabulary.counts[order] / vocabulary.counts.max()


def test_the_exported_model_answers_in_a_fresh_process_as_the_model_does(model, fresh):
    out = fresh["basic"]
    assert out["item_ids"].shape == (3, K) and out["scores"].dtype == np.float32
    for b, session in enumerate(CASES["basic"]):
        assert_answer(model, session, out["item_ids"][b], out["scores"][b])
    assert out["known_items"].tolist() == [3, 1, 6] and out["known_items"].dtype == np.int32
    assert not out["fallback"].any()


def test_unknown_ids_and_blank_padding_are_skipped(model, fresh):
    base = fresh["without_unknown"]
    for name in ("with_unknown", "middle_padding"):
        np.testing.assert_array_equal(fresh[name]["item_ids"], base["item_ids"], err_msg=name)
        np.testing.assert_allclose(fresh[name]["scores"], base["scores"], atol=1e-6)
        assert fresh[name]["known_items"].tolist() == [2] and not fresh[name]["fallback"][0]
    assert_answer(model, CASES["without_unknown"][0], base["item_ids"][0], base["scores"][0])


def test_a_session_with_nothing_known_gets_the_most_popular_items(vocabulary, fresh):
    ids, scores = popular(vocabulary)
    for name in ("empty", "unknown_only"):
        out = fresh[name]
        assert out["fallback"].tolist() == [True] and out["known_items"].tolist() == [0]
        assert out["item_ids"][0].astype(str).tolist() == ids
        np.testing.assert_allclose(out["scores"][0], scores, atol=1e-6)


def test_a_thousand_item_session_runs_over_every_item_and_excludes_them(model, fresh):
    out = fresh["long"]
    assert out["known_items"].tolist() == [1000] and not out["fallback"][0]
    assert_answer(model, LONG, out["item_ids"][0], out["scores"][0])
    assert not set(out["item_ids"][0].astype(str)) & set(LONG)


def test_rows_of_one_batch_answer_as_they_do_alone(fresh):
    out = fresh["mixed_batch"]
    alone = [fresh["basic"], fresh["empty"], fresh["long"], fresh["unknown_only"]]  # each one's first row
    for b, single in enumerate(alone):
        np.testing.assert_array_equal(out["item_ids"][b], single["item_ids"][0])
        np.testing.assert_allclose(out["scores"][b], single["scores"][0], atol=1e-5)
    assert out["fallback"].tolist() == [False, True, False, True]
    assert out["known_items"].tolist() == [3, 0, 1000, 0]


def test_scann_agrees_with_exact_and_never_returns_the_session(trained, server, model):
    from tfrs_app.serving.sessions import SessionRecommenderServer, session_request
    from tfrs_app.stages import session_server

    scann, params, trials = session_server(trained, scann=True)
    assert trials and params["num_leaves"] >= 1
    rng = np.random.default_rng(0)
    sessions = [list(IDS[rng.choice(NUM_ITEMS, int(n), replace=False)]) for n in rng.integers(1, 12, 60)]
    request = session_request(sessions)
    exact = server.signatures()["serving_default"](**request)
    approx = scann.signatures()["serving_default"](**request)
    exact_ids, approx_ids = exact["item_ids"].numpy().astype(str), approx["item_ids"].numpy().astype(str)
    hits = [len(set(a) & set(e)) / K for a, e in zip(approx_ids, exact_ids)]
    assert np.mean(hits) >= 0.9, np.mean(hits)
    for b, session in enumerate(sessions):
        assert not set(approx_ids[b]) & set(session) and "" not in approx_ids[b]
        rows = [int(i[4:]) for i in approx_ids[b]]  # the activation is applied to ScaNN's dot products
        full = model.score_all(model.encode(tf.constant([[int(i[4:]) + 1 for i in session]], tf.int64),
                                            tf.constant([len(session)]))).numpy()[0]
        np.testing.assert_allclose(approx["scores"].numpy()[b], full[rows], atol=1e-5)

    # a session of more items than the exclusion budget (150 distinct, budget 5) is answered exactly
    tight = SessionRecommenderServer(model, IDS, trained.vocabulary.counts, K, index=scann.index, exclude_budget=5)
    request = session_request([LONG, [IDS[3]], ["zzz"]])
    got = tight.signatures()["serving_default"](**request)
    want = server.signatures()["serving_default"](**request)
    np.testing.assert_array_equal(got["item_ids"].numpy()[0], want["item_ids"].numpy()[0])
    np.testing.assert_allclose(got["scores"].numpy()[0], want["scores"].numpy()[0], atol=1e-5)
    assert not set(got["item_ids"].numpy()[0].astype(str)) & set(LONG)
    assert got["fallback"].numpy().tolist() == [False, False, True]


def test_the_client_loads_titles_and_formats_the_answer(exported, fresh, vocabulary):
    from tfrs_app.serving.sessions import SessionRecommendations, format_sessions

    client = SessionRecommendations.load(exported)
    result = client.recommend([IDS[3], "zzz", IDS[40]], k=3)
    assert [i.item_id for i in result.items] == fresh["with_unknown"]["item_ids"][0, :3].astype(str).tolist()
    assert all(i.title == f"Title of {i.item_id}" for i in result.items)
    assert result.unknown == ["zzz"] and result.known_items == 2 and not result.fallback
    text = format_sessions(result)
    assert "2 known to the model; fallback: no" in text and "unknown item zzz" in text
    assert f"Title of {result.items[0].item_id}" in text.splitlines()[-3]
    fallback = client.recommend(["nope"])
    assert fallback.fallback and [i.item_id for i in fallback.items] == popular(vocabulary)[0]
    assert "fallback: yes" in format_sessions(fallback) and fallback.to_dict()["fallback"] is True
    with pytest.raises(ValueError, match=r"k: the model returns at most 10"):
        client.recommend([IDS[3]], k=11)
    with pytest.raises(ValueError, match=r"session_items\[0\]: expected a list"):
        client.recommend_batch([IDS[3]])
    with pytest.raises(ValueError, match="not a session model export"):
        SessionRecommendations.load(_foreign(exported))


def _foreign(exported: Path) -> Path:
    """A copy of the export whose metadata names another model."""
    import json
    import shutil

    from tfrs_app.serving.export import METADATA

    other = exported.parent / "other" / "1"
    shutil.copytree(exported, other)
    meta = json.loads((other / METADATA).read_text())
    (other / METADATA).write_text(json.dumps({**meta, "model": "related_items"}))
    return other


class StubRecommender(tf.Module):
    """The recommender's signature with fixed items: path personalized for "u-known", else
    unknown_user_with_history or cold_start (whether the history has an item)."""

    def __init__(self):
        super().__init__()
        from tfrs_app.serving.export import query_specs

        self.input_specs = query_specs([])
        self.serve = tf.function(self._serve)

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(self.input_specs)}

    def _serve(self, features):
        from tfrs_app.config import HEADS

        user, history = features["user_id"], features["history"]
        batch = tf.shape(user)[0]
        path = tf.where(user == "u-known", "personalized",
                        tf.where(tf.reduce_any(history != "", axis=1), "unknown_user_with_history", "cold_start"))
        grid = tf.fill([batch, 2], 0.5)
        out = {"item_ids": tf.tile(tf.constant([["r1", "r2"]]), [batch, 1]), "item_titles": tf.fill([batch, 2], "R"),
               "score": grid, "num_results": tf.fill([batch], 2), "path": path,
               "candidate_item_ids": tf.fill([batch, 2], "r1"), "candidate_status": tf.fill([batch, 2], "recommended")}
        for head in HEADS:
            out.update({f"{head}_mean": grid, f"{head}_std": grid, f"{head}_bucket": tf.zeros([batch, 2], tf.int64),
                        f"{head}_decision": tf.ones([batch, 2], tf.bool)})
        return out


def test_unknown_users_with_a_history_are_answered_by_the_session_model_beside(server, tmp_path):
    from tfrs_app.serving.export import publish_all, save_server
    from tfrs_app.serving.recommender import Recommender, format_recommendation
    from tfrs_app.serving.sessions import SessionRecommendations, save_session_server

    base = tmp_path / "models"
    stub = StubRecommender()
    publish_all(base, {
        "recommender": lambda tmp: save_server(stub, tmp, {"model": "recommender", "top_n": 5, "user_features": []}),
        "session_recommender": lambda tmp: save_session_server(server, tmp, {"model": "session_recommender",
                                                                             "k": server.k}, titles=list(IDS))})
    recommender = Recommender.load(base / "recommender")
    assert recommender.sessions is not None and Recommender.load(tmp_path / "models" / "recommender" / "1").sessions
    history = [IDS[40], "zzz", IDS[3]]  # most recent first
    users = ["u-new", "u-known", "u-new", "u-new"]
    results = recommender.recommend_batch(users, [history, history, ["zzz"], []], [1609459200] * 4)
    session = SessionRecommendations.load(base).recommend([IDS[3], "zzz", IDS[40]], k=5)  # oldest first
    routed = results[0]
    assert routed.source == "session_model" and routed.path == "unknown_user_with_history"
    assert [i.item_id for i in routed.items] == [i.item_id for i in session.items] and len(routed.items) == 5
    assert [i.score for i in routed.items] == [i.score for i in session.items] and routed.items[0].heads == {}
    assert routed.to_dict()["source"] == "session_model" and "from the session model" in format_recommendation(routed)
    # a known user, a history the session model does not know (its fallback), and cold start keep the graph's answer
    for result in results[1:]:
        assert result.source == "recommender" and [i.item_id for i in result.items] == ["r1", "r2"]
    assert [r.path for r in results[1:]] == ["personalized", "unknown_user_with_history", "cold_start"]
    alone = Recommender.load(_only_recommender(base, tmp_path))
    assert alone.sessions is None and alone.recommend("u-new", history, 1609459200).source == "recommender"


def _only_recommender(base: Path, tmp_path: Path) -> Path:
    """The recommender export copied into a base dir without a session model."""
    import shutil

    target = tmp_path / "alone" / "recommender"
    shutil.copytree(base / "recommender", target)
    return target
