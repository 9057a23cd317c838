"""Related items served in memory (issue 11, item 4): the server's lists against numpy over the
graph stage's tables, the cold-start metadata path, the most-followed fallback, items without
edges, big baskets and named input errors. One small graph run (2 epochs) per module."""
from __future__ import annotations

import numpy as np
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tfrs_app.config import load_config
    from tfrs_app.graph.train import load_trained_graph, run

    run_dir = tmp_path_factory.mktemp("related_run")
    run(load_config(None, [f"run_dir={run_dir}", "data.source=synthetic_directed", "graph.epochs=2",
                           "data.directed.num_users=400"]))
    return load_trained_graph(run_dir)


@pytest.fixture(scope="module")
def server(trained):
    from tfrs_app.serving.related import RelatedItemsServer

    return RelatedItemsServer.from_trained(trained)


@pytest.fixture(scope="module")
def client(server):
    from tfrs_app.serving.related import RelatedItems

    return RelatedItems.from_server(server)


def ids_of(trained) -> np.ndarray:
    return trained.catalog["item_id"].astype(str).to_numpy()


def expected(trained, query: np.ndarray, exclude=()) -> tuple[list, np.ndarray]:
    """(top-k ids, their scores) of query [D] . target, the rows in ``exclude`` left out."""
    scores = query.astype(np.float64) @ trained.target.T.astype(np.float64)
    scores[list(exclude)] = -np.inf
    top = np.argsort(-scores, kind="stable")[: trained.cfg.graph.k]
    return list(ids_of(trained)[top]), scores[top]


def assert_top(trained, got_ids, got_scores, query: np.ndarray, exclude=()) -> None:
    """``got_ids`` [k] (bytes) with ``got_scores`` [k] are the numpy top-k of query . target
    without ``exclude``: the same scores in order, each item's own score, no excluded item
    (robust to float32 near-ties, which may swap two items the numpy order sorts otherwise)."""
    top, scores = expected(trained, query, exclude)
    got = decoded(got_ids)
    np.testing.assert_allclose(got_scores, scores, atol=1e-5)
    rows = {item: r for r, item in enumerate(ids_of(trained))}
    full = query.astype(np.float64) @ trained.target.T.astype(np.float64)
    np.testing.assert_allclose([full[rows[i]] for i in got], got_scores, atol=1e-5)
    assert len(set(got)) == len(got) and not {rows[i] for i in got} & set(exclude)
    close = np.abs(np.asarray(got_scores) - scores) < 1e-5
    assert all(g == t or close[j] for j, (g, t) in enumerate(zip(got, top)))


def answer(server, item_ids, titles=None, genres=None) -> dict:
    from tfrs_app.serving.related import related_request

    out = server.signatures()["serving_default"](**related_request(item_ids, titles, genres))
    return {name: value.numpy() for name, value in out.items()}


def decoded(values) -> list:
    return [v.decode() for v in values]


def test_lists_are_the_numpy_top_k_of_the_basket_mean_without_the_inputs(trained, server):
    ids = ids_of(trained)
    rows = [[3], [3, 400], [10, 11, 500]]
    out = answer(server, [list(ids[r]) for r in rows])
    assert out["item_ids"].shape == (3, trained.cfg.graph.k) and out["scores"].dtype == np.float32
    for b, basket in enumerate(rows):
        assert_top(trained, out["item_ids"][b], out["scores"][b], trained.source[basket].mean(axis=0), basket)
        titles = trained.catalog.set_index(trained.catalog["item_id"].astype(str))["item_title"]
        assert decoded(out["item_titles"][b]) == [str(titles[i]) for i in decoded(out["item_ids"][b])]
    assert list(out["num_known"]) == [1, 2, 3] and not out["fallback"].any()
    assert out["input_known"].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # metadata next to a known id is ignored: its precomputed row is the contribution
    with_meta = answer(server, [[ids[3]]], [["Some Other Title"]], [["Line9|Level2"]])
    assert decoded(with_meta["item_ids"][0]) == decoded(out["item_ids"][0])


def test_unknown_id_with_metadata_is_embedded_from_it(trained, server, client):
    ids = ids_of(trained)
    title, genres = str(trained.catalog["item_title"].iloc[7]), str(trained.catalog["item_genres"].iloc[7])
    source, _ = trained.model.encode({"item_id": tf.constant(["brand-new"]), "item_title": tf.constant([title]),
                                      "item_genres": tf.constant([genres])})
    cold = source.numpy()[0]
    out = answer(server, [["brand-new"]], [[title]], [[genres]])
    assert_top(trained, out["item_ids"][0], out["scores"][0], cold)
    assert not out["fallback"][0] and out["num_known"][0] == 0
    # genres alone are metadata too; a cold item in a basket averages with the known one
    only_genres, _ = trained.model.encode({"item_id": tf.constant(["x"]), "item_title": tf.constant([""]),
                                           "item_genres": tf.constant([genres])})
    out = answer(server, [["x"], [ids[5], "brand-new"]], [[""], ["", title]], [[genres], ["", genres]])
    assert_top(trained, out["item_ids"][0], out["scores"][0], only_genres.numpy()[0])
    assert_top(trained, out["item_ids"][1], out["scores"][1], (trained.source[5] + cold) / 2, [5])
    assert list(out["num_known"]) == [0, 1] and not out["fallback"].any()
    result = client.related_batch([[ids[5], "brand-new"]], titles=[["", title]], genres=[["", genres]])[0]
    assert result.unknown == ["brand-new"] and result.described == ["brand-new"] and not result.fallback


def test_nothing_known_falls_back_to_the_most_followed_items(trained, server, client):
    from tfrs_app.serving.related import format_related

    popularity = trained.popularity()
    k = trained.cfg.graph.k
    top = np.argsort(-popularity, kind="stable")[:k]
    out = answer(server, [["never-heard-of"], ["", ""], ["a", "b"]])
    for b in range(3):
        assert out["fallback"][b] and out["num_known"][b] == 0
        assert decoded(out["item_ids"][b]) == list(ids_of(trained)[top])
        np.testing.assert_allclose(out["scores"][b], popularity[top] / popularity.max(), atol=1e-6)
    assert out["scores"][0, 0] == pytest.approx(1.0)
    result = client.related_batch([["never-heard-of"]])[0]
    assert result.fallback and result.unknown == ["never-heard-of"] and result.described == []
    text = format_related(result)
    assert "fallback" in text and "unknown input never-heard-of" in text and "ignored" in text


def test_a_catalog_item_without_edges_answers_from_its_own_row(trained, server):
    graph = trained.graph
    degree = graph.out_degree() + graph.in_degree() + np.bincount(graph.sim_a, minlength=graph.num_items)
    lonely = np.flatnonzero((graph.occurrences == 0) & (degree == 0))
    if len(lonely):  # the synthetic catalog has items no event shows
        row = int(lonely[0])
        item = ids_of(trained)[row]
        out = answer(server, [[item]])
        assert not out["fallback"][0] and out["num_known"][0] == 1
        assert_top(trained, out["item_ids"][0], out["scores"][0], trained.source[row], [row])
        assert item not in decoded(out["item_ids"][0])


def test_a_catalog_item_absent_from_the_events_is_known_and_answers(trained):
    """A catalog item no event shows: its precomputed rows are its metadata-only embedding (as
    the graph stage writes them for an item without edges); it is a known input, not a fallback."""
    from tfrs_app.serving.related import RelatedItemsServer

    catalog = trained.catalog
    title, genres = str(catalog["item_title"].iloc[7]) + " Deluxe", str(catalog["item_genres"].iloc[7])
    source, target = trained.model.encode({"item_id": tf.constant(["lonely"]), "item_title": tf.constant([title]),
                                           "item_genres": tf.constant([genres])})
    ids = np.append(ids_of(trained), "lonely")
    tables = np.vstack([trained.source, source.numpy()]), np.vstack([trained.target, target.numpy()])
    server = RelatedItemsServer(trained.model, ids, np.append(catalog["item_title"].astype(str), title), *tables,
                                np.append(trained.popularity(), 0.0), trained.cfg.graph.k)
    out = answer(server, [["lonely"]])
    assert not out["fallback"][0] and out["num_known"][0] == 1 and out["input_known"][0, 0]
    scores = tables[0][-1] @ tables[1].T
    scores[-1] = -np.inf
    np.testing.assert_allclose(out["scores"][0], np.sort(scores)[::-1][: trained.cfg.graph.k], atol=1e-5)
    assert "lonely" not in decoded(out["item_ids"][0])


def test_a_fifty_item_basket_excludes_all_fifty(trained, server, client):
    ids = ids_of(trained)
    popularity = trained.popularity()
    rows = list(np.argsort(-popularity, kind="stable")[:50])  # the items most likely to follow each other
    out = answer(server, [list(ids[rows])])
    assert_top(trained, out["item_ids"][0], out["scores"][0], trained.source[rows].mean(axis=0), rows)
    assert not set(decoded(out["item_ids"][0])) & set(ids[rows]) and out["num_known"][0] == 50
    assert [item.item_id for item in client.related(list(ids[rows]), k=3)] == decoded(out["item_ids"][0][:3])


def test_scann_variant_excludes_inputs_and_agrees_with_exact(trained, server):
    from tfrs_app.stages import related_server

    scann, index, trials = related_server(trained, scann=True)
    assert index["num_leaves"] >= 1 and trials
    ids = ids_of(trained)
    baskets = [[ids[3]], [ids[10], ids[11], ids[500]], ["unknown"], list(ids[:50])]
    exact, approx = answer(server, baskets), answer(scann, baskets)
    hits = 0
    for b, basket in enumerate(baskets):
        assert not set(decoded(approx["item_ids"][b])) & set(basket)
        hits += len(set(decoded(approx["item_ids"][b])) & set(decoded(exact["item_ids"][b])))
    # tuned to recall@10 >= 0.95 on one-item queries; a basket's mean query is off that distribution
    assert hits >= 0.8 * exact["item_ids"].size, hits
    assert decoded(approx["item_ids"][2]) == decoded(exact["item_ids"][2]) and approx["fallback"][2]
    np.testing.assert_array_equal(approx["num_known"], exact["num_known"])


def test_wrong_inputs_are_refused_by_name(trained, server, client):
    fn = server.signatures()["serving_default"]
    blank = tf.constant([[""]])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"item_ids: expected \[B, L\] string, got rank 1"):
        fn(item_ids=tf.constant(["i1"]), item_titles=blank, item_genres=blank)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"item_titles: expected the shape of item_ids"):
        fn(item_ids=tf.constant([["i1", "i2"]]), item_titles=blank, item_genres=tf.constant([["", ""]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"batch sizes differ: item_ids 2, item_titles 1"):
        fn(item_ids=tf.constant([["i1"], ["i2"]]), item_titles=blank, item_genres=tf.constant([[""], [""]]))
    with pytest.raises(ValueError, match=r"item_titles\[0\]: expected 2 values"):
        client.related(["i1", "i2"], titles=["only one"])
    with pytest.raises(ValueError, match=r"k: the model returns at most 10"):
        client.related(["i1"], k=11)
    with pytest.raises(ValueError, match=r"item_ids\[0\]: expected a list"):
        client.related_batch(["i1"])


def test_tables_are_variables_not_graph_constants(trained, server):
    names = {v.name.split(":")[0] for v in server.variables}
    assert {"item_ids", "item_titles", "source", "target", "popular_rows", "popular_scores"} <= names


def test_export_of_a_run_without_any_trained_model_names_the_graph_too(tmp_path):
    from tfrs_app.stages import export

    with pytest.raises(FileNotFoundError, match="train retrieval, the ranker or the graph first"):
        export(tmp_path)


def test_a_failed_retrain_keeps_the_previous_model_config_and_tables_together(trained, tmp_path):
    """The graph folder is swapped in whole: a retrain that fails (no edges at this threshold)
    leaves the old config beside the old model, and a changed data section is refused."""
    import shutil

    from tfrs_app.config import ConfigError, load_config  # noqa: F401
    from tfrs_app.graph.train import load_trained_graph, run

    run_dir = tmp_path / "copy"
    shutil.copytree(trained.cfg.run_dir, run_dir)
    base = [f"run_dir={run_dir}", "data.source=synthetic_directed", "graph.epochs=2", "data.directed.num_users=400"]
    with pytest.raises(ValueError, match="graph.min_count"):
        run(load_config(None, base + ["graph.min_count=100000", "graph.k=3"]))
    again = load_trained_graph(run_dir)
    assert again.cfg.graph.k == trained.cfg.graph.k and again.cfg.graph.min_count == trained.cfg.graph.min_count
    np.testing.assert_array_equal(again.source, trained.source)
    with pytest.raises(ValueError, match="since graph was trained"):
        run(load_config(None, base + ["data.val_fraction=0.3"]))


def test_the_loaded_model_keeps_its_own_vocabularies(trained):
    """load_trained_graph rebuilds the encoder from the saved vocabularies: its cold-start
    encodings equal the stored rows of the catalog items the training events never showed."""
    from tfrs_app.graph.train import load_trained_graph

    again = load_trained_graph(trained.cfg.run_dir)
    assert again.model.vocabularies == trained.model.vocabularies
    features = {name: tensor[:5] for name, tensor in again.model.item_features.items()}
    np.testing.assert_allclose(again.model.encode(features)[0].numpy(), trained.model.encode(features)[0].numpy(),
                               atol=1e-6)


def test_a_tiny_catalog_exports_the_exact_model_only(tmp_path):
    """Under 16 items ScaNN cannot build its quantiser: export publishes related_items alone."""
    from tfrs_app.config import load_config
    from tfrs_app.graph.train import run
    from tfrs_app.stages import export

    run_dir = tmp_path / "tiny"
    run(load_config(None, [f"run_dir={run_dir}", "data.source=synthetic_directed", "data.directed.num_users=300",
                           "data.directed.num_groups=1", "data.directed.items_per_level=4", "data.directed.levels=3",
                           "data.directed.successors=3", "graph.epochs=2", "graph.k=3", "index.k=12",
                           "index.recall_k=3", "retrieval.eval_ks=[3,12]", "retrieval.early_stopping_metric=recall@12",
                           f"export.base_dir={tmp_path / 'models'}"]))
    assert sorted(export(run_dir)) == ["related_items"]
