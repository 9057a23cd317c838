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
