"""Item graph, degree-adaptive sampling, the asymmetric loss and the metrics, with worked answers."""
import numpy as np
import pandas as pd
import pytest

from tfrs_app.config import ConfigError, load_config
from tfrs_app.graph.baselines import CooccurrenceScorer
from tfrs_app.graph.edges import DAY, ItemGraph, build_graph, held_out_pairs
from tfrs_app.graph.evaluate import asymmetry, one_way_pairs, rank_metrics, target_ranks
from tfrs_app.graph.sampling import NeighbourSampler, sample_sizes
from tfrs_app.graph.synthetic import generate_directed

T0 = 1_600_000_000


def log(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def catalog(ids):
    return pd.DataFrame({"item_id": ids, "item_title": [f"title {i}" for i in ids], "item_genres": ["g"] * len(ids)})


# u1: A, then B a day later, then C nine days after B; u2: A, then B two days later.
FIVE = log([("u1", "A", T0), ("u1", "B", T0 + DAY), ("u1", "C", T0 + 10 * DAY),
            ("u2", "A", T0), ("u2", "B", T0 + 2 * DAY)])


def edges(graph):
    return {(graph.item_ids[a], graph.item_ids[b]): float(w) for a, b, w in zip(graph.src, graph.dst, graph.weight)}


def test_five_event_log_window_threshold_direction():
    items = catalog(["A", "B", "C", "D"])
    # window 7 days: A -> B twice; B -> C (9 days) and A -> C (10 days) are outside it; never B -> A
    assert edges(build_graph(FIVE, items, window_days=7, min_count=1)) == {("A", "B"): 2.0}
    # window 10 days: A -> C (10 days) and B -> C (9 days) join, once each
    assert edges(build_graph(FIVE, items, window_days=10, min_count=1)) == {("A", "B"): 2.0, ("A", "C"): 1.0,
                                                                            ("B", "C"): 1.0}
    # threshold 2 keeps only the pair two users made
    assert edges(build_graph(FIVE, items, window_days=10, min_count=2)) == {("A", "B"): 2.0}
    # each event pairs with at most its next max_next events: u1's A -> C needs 2
    assert ("A", "C") not in edges(build_graph(FIVE, items, window_days=10, min_count=1, max_next=1))
    graph = build_graph(FIVE, items, window_days=7, min_count=1)
    assert graph.occurrences.tolist() == [2, 2, 1, 0]  # D is a node without events or edges
    assert graph.follow_ons.tolist() == [2, 0, 0, 0]  # follow-on events within the window, before the threshold
    assert graph.describe()["items_without_edges"] == 2  # C (its pairs are outside the window) and D
    assert len(graph.sim_a) == 0  # every gap is >= a day: no co-views within 30 minutes


def test_same_second_is_a_coview_not_a_direction():
    events = log([("u1", "A", T0), ("u1", "B", T0), ("u2", "A", T0 + 5), ("u2", "B", T0 + 65)])
    graph = build_graph(events, catalog(["A", "B"]), window_days=7, min_count=1, coview_minutes=30)
    assert edges(graph) == {("A", "B"): 1.0}  # only u2's (a minute apart); u1's same-second pair has no order
    sims = sorted((graph.item_ids[a], graph.item_ids[b], float(w)) for a, b, w in zip(graph.sim_a, graph.sim_b,
                                                                                     graph.sim_weight))
    assert sims == [("A", "B", 2.0), ("B", "A", 2.0)]  # both pairs, stored both ways


def test_content_edges_join_items_without_events():
    items = pd.DataFrame({"item_id": ["A", "B", "C"], "item_title": ["red phone", "red phone case", "blue kettle"],
                          "item_genres": ["Phones", "Phones", "Kitchen"]})
    graph = build_graph(FIVE[FIVE.item_id != "C"], items, window_days=7, min_count=1, content_top_k=1)
    sims = {(graph.item_ids[a], graph.item_ids[b]) for a, b in zip(graph.sim_a, graph.sim_b)}
    assert ("A", "B") in sims and ("B", "A") in sims  # share "red phone" and the genre


def test_held_out_pairs_need_a_later_target():
    history = log([("u1", "A", T0)])
    later = log([("u1", "B", T0 + DAY), ("u1", "C", T0 + 7 * DAY + DAY // 2), ("u2", "A", T0 + DAY)])
    pairs = held_out_pairs(history, later, np.array(["A", "B", "C"]), window_days=7, max_next=20)
    assert sorted(zip(pairs.source, pairs.target)) == [(0, 1), (1, 2)]  # A -> B across the cut, B -> C; not A -> C


def test_degree_adaptive_sample_sizes():
    # log1p(degree) of the linked nodes: 0.693, 1.386, 2.079 -> shares 0, 0.5, 1 of the way from max to min
    assert sample_sizes(np.array([0, 1, 3, 7]), 2, 10).tolist() == [0, 10, 6, 2]
    assert sample_sizes(np.array([4, 4]), 2, 10).tolist() == [10, 10]  # one degree: every node gets the most


def test_low_degree_nodes_keep_every_neighbour_hubs_their_heaviest():
    # a chain 0 -> 1 -> 2 -> 3 plus a hub 4 -> {0, 1, 2, 3}
    src = np.array([0, 1, 2, 4, 4, 4, 4])
    dst = np.array([1, 2, 3, 0, 1, 2, 3])
    weight = np.array([1, 1, 1, 5, 4, 3, 2], dtype=np.float32)
    empty = np.zeros(0, np.int64)
    graph = ItemGraph(np.array(list("abcde")), src, dst, weight, empty, empty, np.zeros(0, np.float32),
                      np.ones(5, np.int64), np.zeros(5))
    sampler = NeighbourSampler(graph, min_neighbours=2, max_neighbours=3)
    assert sampler.sizes["out"].tolist() == [3, 3, 3, 0, 2]  # degree 1 -> 3 neighbours, the hub (4) -> 2
    out = sampler.sample(None).out
    assert out[0][out[0] < 5].tolist() == [1]  # its one out-neighbour (room for 3)
    assert out[4][out[4] < 5].tolist() == [0, 1]  # the hub's two heaviest
    assert (out[3] == 5).all()  # no out-edges: all padding
    drawn = sampler.sample(np.random.default_rng(0)).out
    assert set(drawn[4][drawn[4] < 5].tolist()) <= {0, 1, 2, 3}


def test_asymmetric_loss_on_a_three_node_graph():
    """a -> b and b -> c, both one-way. With id dropout off and no sampled negatives, the loss
    with asymmetry weight 1 minus the loss with 0 is the mean of softplus((s_b . t_a - s_a . t_b) / T)."""
    import tensorflow as tf

    from tfrs_app.graph.model import DualGraphModel

    def asymmetric_loss(forward, backward, temperature):  # the term edge_loss adds, by hand
        return np.logaddexp(0.0, (np.asarray(backward, np.float64) - np.asarray(forward, np.float64)) / temperature)

    def model(weight):
        tf.keras.utils.set_random_seed(3)
        built = DualGraphModel(["a", "b", "c"], ["x", "y", "z"], ["g", "g", "h"], ["x", "y", "z"], ["g", "h"],
                               max_neighbours=2, embedding_dim=4, hidden_layers=(), hops=1, temperature=0.5,
                               asymmetry_weight=weight, num_negatives=0, id_dropout=0.0)
        built.embed()  # the weights are made here, under the seed: both models start alike
        return built

    src, dst = tf.constant([0, 1]), tf.constant([1, 2])
    one_way = tf.constant([True, True])
    with_term, without = model(1.0), model(0.0)
    source, target = (t.numpy() for t in with_term.embed(training=True))
    forward = np.sum(source[[0, 1]] * target[[1, 2]], axis=1)
    backward = np.sum(source[[1, 2]] * target[[0, 1]], axis=1)
    expected = asymmetric_loss(forward, backward, 0.5).mean()
    difference = float(with_term.edge_loss(src, dst, one_way) - without.edge_loss(src, dst, one_way))
    assert difference == pytest.approx(expected, rel=1e-4)
    # by hand: equal scores both ways give softplus(0) = log 2; a reverse scoring 0.5 below gives log(1 + e^-1)
    assert asymmetric_loss([0.3], [0.3], 0.5)[0] == pytest.approx(np.log(2))
    assert asymmetric_loss([0.8], [0.3], 0.5)[0] == pytest.approx(np.log1p(np.exp(-1)))
    # a two-way edge gets no asymmetry term
    assert float(with_term.edge_loss(src, dst, tf.constant([False, False]))) == pytest.approx(
        float(without.edge_loss(src, dst, tf.constant([False, False]))), rel=1e-6)


def test_ranks_metrics_and_asymmetry_by_hand():
    scores = np.array([[0.0, 0.9, 0.5, 0.1],   # given 0: item 1 first, then 2
                       [0.2, 0.0, 0.1, 0.1],   # given 1: 0 first
                       [0.4, 0.4, 0.0, 0.4],   # ties: 3 ranks last among three equal scores
                       [0.0, 0.0, 0.0, 0.0]])
    scorer = lambda rows: scores[rows]  # noqa: E731
    ranks = target_ranks(scorer, np.array([0, 0, 1, 2]), np.array([1, 2, 0, 3]))
    assert ranks.tolist() == [1, 2, 1, 3]
    assert rank_metrics(ranks, 2) == {"hit_rate@2": 0.75, "mrr@2": pytest.approx((1 + 0.5 + 1) / 4), "pairs": 4}
    pairs = pd.DataFrame({"source": [0], "target": [2]})
    result = asymmetry(scorer, pairs)  # rank(2 | 0) = 2, rank(0 | 2) = 3 (ties against it): forward wins
    assert result["forward_wins"] == 1.0
    held = pd.DataFrame({"source": [0, 2, 1], "target": [2, 0, 3]})
    assert one_way_pairs(held, np.array([3]), np.array([1]), 4).values.tolist() == []  # 0<->2 both held, 1->3 known back


def test_cooccurrence_is_conditional_probability():
    scorer = CooccurrenceScorer(FIVE, np.array(["A", "B", "C"]), window_days=10, max_next=20)
    row = scorer(np.array([0]))[0]  # A occurs twice: B followed both times, C once
    assert row[1] == pytest.approx(1.0, abs=1e-5) and row[2] == pytest.approx(0.5, abs=1e-5)


def test_generator_plants_one_way_structure():
    data = generate_directed(load_config(None, ["data.directed.num_users=300"]).data.directed)
    events, truth = data.interactions.events, data.truth
    level = dict(zip(truth.item_ids, truth.level))
    predecessors = {}
    for a, b in truth.successors:
        predecessors.setdefault(b, set()).add(a)
    for _, user in list(events.sort_values("timestamp", kind="stable").groupby("user_id"))[:200]:
        seen = list(user["item_id"])
        for position, item in enumerate(seen):  # every accessory follows an item it is a follow-on of
            if level[item] > 0:
                assert predecessors[item] & set(seen[:position]), (item, seen)
    assert {level[i] for i in events["item_id"]} == set(range(6))
    assert all(level[b] == level[a] + 1 for a, b in truth.successors)  # one way: up one level, never down
    assert events.groupby("user_id")["item_id"].apply(lambda s: s.is_unique).all()


def test_graph_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="graph.min_neighbours"):
        load_config(None, ["graph.min_neighbours=30", "graph.max_neighbours=10"])
    with pytest.raises(ConfigError, match="graph.window_days"):
        load_config(None, ["graph.window_days=0"])
    with pytest.raises(ConfigError, match="data.directed.funnel"):
        load_config(None, ["data.directed.funnel=1.5"])
    with pytest.raises(ConfigError, match="data.directed.successors"):
        load_config(None, ["data.directed.successors=30"])


def test_no_directed_edges_is_a_clear_error():
    from tfrs_app.graph.train import fit
    from tfrs_app.graph.model import DualGraphModel

    graph = build_graph(FIVE, catalog(["A", "B", "C"]), window_days=7, min_count=5)
    model = DualGraphModel(["A", "B", "C"], ["a", "b", "c"], ["g"] * 3, ["a"], ["g"], max_neighbours=2)
    with pytest.raises(ValueError, match="graph.min_count"):
        fit(model, graph, load_config(None).graph, 0)


def test_content_edges_match_every_genre_of_an_item():
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "item_title": ["red car", "blue kettle", "green tree"],
                          "item_genres": ["Action|Comedy", "Comedy", "Drama"]})
    graph = build_graph(FIVE.iloc[:0], items, window_days=7, min_count=1, content_top_k=1)
    sims = {(graph.item_ids[a], graph.item_ids[b]) for a, b in zip(graph.sim_a, graph.sim_b)}
    assert ("b", "a") in sims  # Comedy second in a's list is the same token as b's Comedy
    assert not {("c", "a"), ("c", "b")} & sims  # nothing in common: no edge


def test_direction_evidence_by_hand():
    """1 - 2 P(X <= r), X ~ Binomial(w + r, 1/2): a -> b 10 times against 2 back: 1 - 2 * 79/4096."""
    empty = np.zeros(0, np.int64)
    graph = ItemGraph(np.array(list("abc")), np.array([0, 1, 0, 2]), np.array([1, 0, 2, 1]),
                      np.array([10, 2, 2, 3], np.float32), empty, empty, np.zeros(0, np.float32), np.ones(3, np.int64),
                      np.zeros(3))
    np.testing.assert_allclose(graph.direction_evidence(), [1 - 2 * 79 / 4096, 0.0, 0.5, 0.75], atol=1e-6)
    assert graph.one_way().tolist() == [False, False, True, True]
