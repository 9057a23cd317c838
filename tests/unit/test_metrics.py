import numpy as np
import pytest

from tfrs_app.retrieval.evaluate import ranking_metrics, top_k


def test_ranking_metrics_worked_example():
    ranked = np.array([[5, 1, 7], [2, 3, 4], [9, 8, 6]])
    relevant = [{1, 7}, {4}, set()]  # the third query has nothing relevant and is skipped
    m = ranking_metrics(ranked, relevant, ks=[1, 3])
    assert m["num_queries"] == 2
    assert m["recall@1"] == 0.0
    assert m["recall@3"] == pytest.approx((1.0 + 1.0) / 2)
    ndcg_a = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    ndcg_b = (1 / np.log2(4)) / 1.0
    assert m["ndcg@3"] == pytest.approx((ndcg_a + ndcg_b) / 2)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_top_k_orders_and_excludes():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 0.2, 0.3]])
    assert top_k(lambda a, b: scores[a:b], 2, 2).tolist() == [[1, 3], [0, 3]]
    exclude = [np.array([1]), np.array([], dtype=np.int64)]
    assert top_k(lambda a, b: scores[a:b], 2, 3, exclude, batch_size=1).tolist() == [[3, 2, 0], [0, 3, 2]]


def test_no_relevant_items_is_an_error():
    with pytest.raises(ValueError, match="no query has a relevant item"):
        ranking_metrics(np.array([[1]]), [set()], [1])


def _eval_set(known, event_items, event_users, relevant=None):
    from tfrs_app.retrieval.evaluate import EvalSet

    known = [np.array(k, dtype=np.int64) for k in known]
    relevant = relevant or [set() for _ in known]
    return EvalSet({}, relevant, known, known, {}, np.array(event_items), np.array(event_users))


def test_hit_rate_and_full_rank_mrr_worked_example():
    from tfrs_app.retrieval.evaluate import full_rank_mrr

    ranked = np.array([[5, 1, 7], [2, 3, 4]])
    m = ranking_metrics(ranked, [{1, 7}, {9}], ks=[1, 3])
    assert m["hit_rate@3"] == 0.5 and m["hit_rate@1"] == 0.0
    scores = np.array([[0.9, 0.1, 0.5, 0.7], [0.2, 0.8, 0.4, 0.3]])
    # query 0: relevant {2}; row 0 (0.9) is excluded, row 3 (0.7) is above -> rank 2
    # query 1: relevant {0, 2}; best relevant is row 2 (0.4), row 1 is above -> rank 2; row 3 does not count
    mrr = full_rank_mrr(lambda a, b: scores[a:b], [{2}, {0, 2}], [np.array([0]), np.array([], dtype=np.int64)])
    assert mrr == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_event_accuracy_excludes_known_items_only_in_the_excl_column():
    from tfrs_app.retrieval.evaluate import event_accuracy

    scores = np.array([[0.9, 0.8, 0.1, 0.5]])  # one event of user 0, whose item is row 3 (third best)
    es = _eval_set(known=[[0, 1]], event_items=[3], event_users=[0])
    acc = event_accuracy(lambda a, b: scores[a:b], es, ks=[1, 2])
    assert acc["top_1_accuracy"] == 0.0 and acc["top_2_accuracy"] == 0.0  # rows 0 and 1 outrank it
    assert acc["top_1_accuracy_excl"] == 1.0  # once the known rows 0 and 1 are gone it is first
    known_target = _eval_set(known=[[3]], event_items=[3], event_users=[0])  # a served list never shows it
    assert event_accuracy(lambda a, b: scores[a:b], known_target, ks=[4])["top_4_accuracy_excl"] == 0.0


def test_event_accuracy_equals_tfrs_factorized_top_k():
    import tfrs_app  # noqa: F401
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    from tfrs_app.retrieval.evaluate import event_accuracy

    rng = np.random.default_rng(0)
    items, queries = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(500, 8)).astype(np.float32)
    targets = rng.integers(0, 300, size=500)
    ids = np.array([str(i) for i in range(300)])
    index = tfrs.layers.factorized_top_k.BruteForce(k=50).index(tf.constant(items), tf.constant(ids))
    reference = tfrs.metrics.FactorizedTopK(candidates=index, ks=(1, 10, 50))
    reference.update_state(tf.constant(queries), tf.constant(items[targets]), true_candidate_ids=tf.constant(ids[targets]))
    es = _eval_set(known=[[]], event_items=targets, event_users=np.zeros(500, dtype=np.int64))
    ours = event_accuracy(lambda a, b: queries[a:b] @ items.T, es, ks=[1, 10, 50], batch_size=128)
    for k, value in zip((1, 10, 50), reference.result()):
        assert ours[f"top_{k}_accuracy"] == pytest.approx(float(value.numpy()), abs=1e-6)
        assert ours[f"top_{k}_accuracy_excl"] == ours[f"top_{k}_accuracy"]  # nothing known, nothing removed


def test_ties_count_as_a_random_tie_break_not_in_the_items_favour():
    from tfrs_app.retrieval.evaluate import event_accuracy, full_rank_mrr

    scores = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]])  # a sparse baseline: one item scored, four at 0
    es = _eval_set(known=[[]], event_items=[3], event_users=[0])
    acc = event_accuracy(lambda a, b: scores[a:b], es, ks=[1, 2, 5])
    # row 0 is above; rows 1-4 tie: one free slot in the top 2 shared by four rows
    assert acc["top_1_accuracy"] == 0.0 and acc["top_2_accuracy"] == pytest.approx(0.25)
    assert acc["top_5_accuracy"] == 1.0
    # expected rank 1 + 1 above + 3 other tied / 2 = 3.5
    assert full_rank_mrr(lambda a, b: scores[a:b], [{3}], [np.array([], dtype=np.int64)]) == pytest.approx(1 / 3.5)
