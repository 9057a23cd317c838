"""Related items exported (issue 11, item 4): a run with only a graph exports related_items and
related_items_scann; each answers in a fresh process that imports only TensorFlow (and ScaNN
for the ScaNN export) exactly as the in-memory server does; TF Serving's models.config and
warmup records are there; and ``tfrs-app related`` prints the titles."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfrs_app  # noqa: F401


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run_dir, TrainedGraph, {model: version path}): a graph-only run, exported."""
    from tfrs_app.config import load_config
    from tfrs_app.graph.train import load_trained_graph, run
    from tfrs_app.stages import export

    root = tmp_path_factory.mktemp("related_export")
    run_dir = root / "run"
    run(load_config(None, [f"run_dir={run_dir}", "data.source=synthetic_directed", "graph.epochs=2",
                           "data.directed.num_users=400", f"export.base_dir={root / 'saved_models'}"]))
    paths = export(run_dir)  # base dir from the graph stage's config: the run has no retrieval or ranker
    return run_dir, load_trained_graph(run_dir), paths


def requests(trained) -> dict[str, np.ndarray]:
    """One known item, a basket of 3, an unknown id with metadata, an unknown id without, a mix."""
    ids = trained.catalog["item_id"].astype(str).to_numpy()
    title, genres = str(trained.catalog["item_title"].iloc[9]), str(trained.catalog["item_genres"].iloc[9])
    rows = [([ids[3], "", ""], ["", "", ""], ["", "", ""]),
            ([ids[10], ids[11], ids[500]], ["", "", ""], ["", "", ""]),
            (["brand-new", "", ""], [title, "", ""], [genres, "", ""]),
            (["never-heard-of", "", ""], ["", "", ""], ["", "", ""]),
            ([ids[20], "brand-new", "nope"], ["", title, ""], ["", genres, ""])]
    return {name: np.array([row[j] for row in rows], dtype=str)
            for j, name in enumerate(("item_ids", "item_titles", "item_genres"))}


FRESH = """
import sys
import numpy as np
import tensorflow as tf
{maybe_scann}
model = tf.saved_model.load(sys.argv[1])
inputs = {{k: tf.constant(v) for k, v in np.load(sys.argv[2]).items()}}
out = model.signatures["serving_default"](**inputs)
assert "tfrs_app" not in sys.modules and "tensorflow_recommenders" not in sys.modules
np.savez(sys.argv[3], **{{k: v.numpy() for k, v in out.items()}})
"""


def fresh_process(path: str, request: dict, tmp_path: Path, scann: bool) -> dict:
    np.savez(tmp_path / "in.npz", **request)
    code = FRESH.format(maybe_scann="import scann" if scann else "")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code, path, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "out.npz", allow_pickle=True) as out:  # our own file: string outputs are objects
        return dict(out)


def in_memory(server, request: dict) -> dict:
    import tensorflow as tf

    out = server.signatures()["serving_default"](**{k: tf.constant(v) for k, v in request.items()})
    return {k: v.numpy() for k, v in out.items()}


def test_a_graph_only_run_exports_both_models_with_metadata_and_warmup(exported):
    from tfrs_app.serving.load import metadata
    from tfrs_app.serving.tf_serving import WARMUP, read_warmup

    run_dir, trained, paths = exported
    assert sorted(paths) == ["related_items", "related_items_scann"]
    base = Path(paths["related_items"]).parents[1]
    assert Path(paths["related_items"]).name == Path(paths["related_items_scann"]).name  # one version
    config, stock = (base / "models.config").read_text(), (base / "models.stock.config").read_text()
    assert 'name: "related_items"' in config and 'name: "related_items_scann"' in config
    assert 'name: "related_items"' in stock and "related_items_scann" not in stock
    ids = set(trained.catalog["item_id"].astype(str))
    for name, path in paths.items():
        meta = metadata(path)
        assert meta["model"] == name and meta["k"] == trained.cfg.graph.k and meta["run_dir"] == str(run_dir.resolve())
        assert meta["num_candidates"] == len(ids) and meta["requires_scann"] == (name == "related_items_scann")
        assert meta["inputs"] == ["item_genres", "item_ids", "item_titles"]
        assert {"item_ids", "item_titles", "scores", "num_known", "fallback"} <= set(meta["outputs"])
        assert (meta["index"] == "brute_force") == (name == "related_items")
        assert (Path(path) / WARMUP).exists()
        (_, signature, request), = read_warmup(path)
        assert signature == "serving_default" and request["item_ids"].shape == (2, 2)
        assert [sum(1 for i in row if i) for row in request["item_ids"].astype(str)] == [1, 2]  # an item, a basket
        assert set(request["item_ids"].astype(str).ravel()) - {""} <= ids
        # the tables are variables: no title is a constant in the graph
        assert str(trained.catalog["item_title"].iloc[0]).encode() not in (Path(path) / "saved_model.pb").read_bytes()
    exports = json.loads((run_dir / "exports.json").read_text())
    assert exports["related_items"] == paths["related_items"]


def test_the_stock_export_answers_in_a_fresh_process_like_the_in_memory_server(exported, tmp_path):
    from tfrs_app.serving.related import RelatedItemsServer

    _, trained, paths = exported
    request = requests(trained)
    expected = in_memory(RelatedItemsServer.from_trained(trained), request)
    got = fresh_process(paths["related_items"], request, tmp_path, scann=False)
    assert sorted(got) == sorted(expected)
    for name in ("item_ids", "item_titles", "num_known", "fallback", "input_known"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-5)
    assert got["num_known"].tolist() == [1, 3, 0, 0, 1] and got["fallback"].tolist() == [False, False, False, True, False]


def test_the_scann_export_answers_in_a_fresh_process_like_its_in_memory_server(exported, tmp_path):
    from tfrs_app.stages import related_server

    _, trained, paths = exported
    request = requests(trained)
    expected = in_memory(related_server(trained, scann=True)[0], request)
    got = fresh_process(paths["related_items_scann"], request, tmp_path, scann=True)
    # the exported index and this one are built apart from the same table and parameters; ScaNN's
    # k-means and hashing training are seeded, so they answer the same
    for name in ("item_ids", "item_titles", "num_known", "fallback", "input_known"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-5)
    for row, basket in enumerate(request["item_ids"].astype(str)):
        assert not set(got["item_ids"][row].astype(str)) & (set(basket) - {""})  # inputs never come back


def run_cli(*args: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("tfrs-app")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_related_prints_titles_and_says_what_was_unknown(exported):
    from tfrs_app.serving.related import RelatedItems

    _, trained, paths = exported
    base = Path(paths["related_items"]).parent  # the model base path: its newest version is used
    ids = trained.catalog["item_id"].astype(str).to_numpy()
    titles = dict(zip(ids, trained.catalog["item_title"].astype(str)))
    expected = RelatedItems.load(base).related([ids[10], ids[11]], k=3)

    done = run_cli("related", "--item", ids[10], "--item", ids[11], "--item", "nope", "--model", str(base), "--k", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "2 of 3 inputs are catalog items" in lines[0]
    assert any(line.startswith("unknown input nope") for line in lines)
    table = lines[lines.index(next(line for line in lines if line.lstrip().startswith("rank"))) + 1:]
    assert len(table) == 3
    for rank, (line, item) in enumerate(zip(table, expected), 1):
        cells = line.split()
        assert cells[0] == str(rank) and cells[1] == item.item_id and titles[item.item_id] in line
        assert float(cells[2]) == pytest.approx(item.score, abs=1e-4)

    done = run_cli("related", "--item", "never-heard-of", "--model", paths["related_items"], "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["fallback"] and result["unknown"] == ["never-heard-of"] and len(result["items"]) == trained.cfg.graph.k

    done = run_cli("related", "--item", ids[3], "--model", str(base.parent / "nowhere"))
    assert done.returncode == 2 and "no such SavedModel" in done.stderr

    # a new item with a title and genres is embedded from them; one --title per --item
    title, genres = str(trained.catalog["item_title"].iloc[9]), str(trained.catalog["item_genres"].iloc[9])
    done = run_cli("related", "--item", "brand-new", "--title", title, "--genres", genres, "--model", str(base), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert not result["fallback"] and result["described"] == ["brand-new"] and result["items"]
    expected = RelatedItems.load(base).related(["brand-new"], titles=[title], genres=[genres])
    assert [item["item_id"] for item in result["items"]] == [item.item_id for item in expected]
    done = run_cli("related", "--item", "a", "--item", "b", "--title", "x", "--model", str(base))
    assert done.returncode == 2 and "--title: give one per --item" in done.stderr
