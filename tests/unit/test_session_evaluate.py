"""Next-item and leave-last-out evaluation: cases of three sessions, ranks worked out by hand
(a tie counted pessimistically, a repeat target, exclusion on and off), hit/nDCG/MRR of 4 users
(one skipped) by hand, and the batched LLO equal to the retrieval evaluator's functions on one
matrix. ~1 s, no TF."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tfrs_app.retrieval.evaluate import full_rank_mrr, ranking_metrics, top_k
from tfrs_app.sequences.evaluate import evaluate_last_item, evaluate_next_item, next_item_cases


def test_next_item_cases_of_three_sessions():
    # sessions [5, 6, 7], [8] (no case), [] (no case), [9, 5]
    offsets, items = np.array([0, 3, 4, 4, 6]), np.array([5, 6, 7, 8, 9, 5])
    prefixes, targets = next_item_cases(offsets, items)
    assert [p.tolist() for p in prefixes] == [[5], [5, 6], [9]]
    assert targets.dtype == np.int64 and targets.tolist() == [6, 7, 5]
    prefixes, targets = next_item_cases(offsets, items, max_prefix=1)
    assert [p.tolist() for p in prefixes] == [[5], [6], [9]] and targets.tolist() == [6, 7, 5]
    with pytest.raises(ValueError, match="max_prefix"):
        next_item_cases(offsets, items, max_prefix=0)
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        next_item_cases(np.array([0, 4, 3, 6]), items)


# 5 items; each case's prefix, target and the scores score_fn returns for it
CASES = [
    ([0], 2, [9, 5, 4, 1, 0]),     # item 0 excluded: only item 1 above -> rank 2 (no exclusion: 3)
    ([1], 3, [3, 9, 2, 2, 1]),     # item 1 excluded: item 0 above, item 2 tied -> rank 3 (no exclusion: 4)
    ([0, 4], 4, [0, 0, 0, 0, 9]),  # repeat target: excluded -> miss (no exclusion: rank 1)
    ([2], 0, [1, 1, 1, 1, 1]),     # constant scores: items 1, 3, 4 tie with it -> rank 4 (no exclusion: 5)
]


def case_scores(prefixes):
    table = {tuple(p): s for p, _, s in CASES}
    return np.array([table[tuple(np.asarray(p).tolist())] for p in prefixes], dtype=np.float32)


@pytest.mark.parametrize("batch_size", [1, 3, 1024])
def test_evaluate_next_item_hand_ranks(batch_size):
    prefixes = [np.array(p) for p, _, _ in CASES]
    targets = np.array([t for _, t, _ in CASES])
    m = evaluate_next_item(case_scores, prefixes, targets, k=2, batch_size=batch_size)
    # ranks 2, 3, miss, 4: only the first within 2
    assert m == pytest.approx({"recall@2": 1 / 4, "mrr@2": (1 / 2) / 4, "num_cases": 4, "repeat_share": 1 / 4})
    m = evaluate_next_item(case_scores, prefixes, targets, k=3, batch_size=batch_size)
    assert m == pytest.approx({"recall@3": 2 / 4, "mrr@3": (1 / 2 + 1 / 3) / 4, "num_cases": 4, "repeat_share": 1 / 4})
    # no exclusion: ranks 3, 4, 1, 5
    m = evaluate_next_item(case_scores, prefixes, targets, k=3, exclude_seen=False, batch_size=batch_size)
    assert m == pytest.approx({"recall@3": 2 / 4, "mrr@3": (1 / 3 + 1) / 4, "num_cases": 4, "repeat_share": 1 / 4})


def test_evaluate_next_item_rejects_bad_input():
    prefixes, targets = [np.array([0])], np.array([2])
    with pytest.raises(ValueError, match="prefixes has 1 entries but targets has 2"):
        evaluate_next_item(case_scores, prefixes, np.array([2, 3]))
    with pytest.raises(ValueError, match="k must be"):
        evaluate_next_item(case_scores, prefixes, targets, k=0)
    with pytest.raises(ValueError, match="targets has catalog row 7"):
        evaluate_next_item(case_scores, prefixes, np.array([7]))
    with pytest.raises(ValueError, match="shape"):
        evaluate_next_item(lambda b: np.zeros((2, 5)), prefixes, targets)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_next_item(lambda b: np.full((len(b), 5), np.nan), prefixes, targets)
    with pytest.raises(ValueError, match=r"prefixes\[1\]"):
        evaluate_next_item(lambda b: np.zeros((len(b), 5)), [np.array([0]), np.array([5])], np.array([1, 1]))


# 4 users over 5 items: history (= excluded), target, scores
USERS = [
    ([0], 1, [5, 4, 3, 2, 1]),  # item 0 excluded: target first -> rank 1
    ([2], 4, [1, 5, 9, 3, 4]),  # item 2 excluded: 1 (5) above, then 4 -> rank 2
    ([3], 0, [1, 2, 5, 9, 0]),  # item 3 excluded: 2 (5), 1 (2) above -> rank 3
    ([1], 1, [0, 9, 0, 0, 0]),  # target in its own history: excluded, the user is skipped
]


def user_scores(histories):
    table = {tuple(h): s for h, _, s in USERS}
    return np.array([table[tuple(np.asarray(h).tolist())] for h in histories], dtype=np.float32)


def test_evaluate_last_item_hand_numbers():
    histories = [np.array(h) for h, _, _ in USERS]
    targets = np.array([t for _, t, _ in USERS])
    m = evaluate_last_item(user_scores, histories, targets, k=2)
    # ranks 1, 2, 3 (the 4th user skipped): hit 2/3, nDCG (1 + 1/log2(3)) / 3, MRR (1 + 1/2 + 1/3) / 3
    assert m == pytest.approx({"hit_rate@2": 2 / 3, "ndcg@2": (1 + 1 / math.log2(3)) / 3,
                               "mrr": (1 + 1 / 2 + 1 / 3) / 3, "num_queries": 3})
    # an explicit, empty exclude masks nothing and skips no one:
    # ranks u0 2 (5 above), u1 3 (9, 5 above), u2 4 (9, 5, 2 above), u3 1
    m = evaluate_last_item(user_scores, histories, targets, k=3, exclude=[np.array([], np.int64)] * 4)
    assert m == pytest.approx({"hit_rate@3": 3 / 4, "ndcg@3": (1 / math.log2(3) + 1 / 2 + 0 + 1) / 4,
                               "mrr": (1 / 2 + 1 / 3 + 1 / 4 + 1) / 4, "num_queries": 4})


def test_evaluate_last_item_mrr_breaks_ties_at_random_like_the_bench():
    # target 1 ties with item 2 after item 0 is excluded: expected rank 1 + 1/2 (full_rank_mrr's rule)
    m = evaluate_last_item(lambda h: np.array([[5, 4, 4, 2, 1]] * len(h), np.float32), [np.array([0])],
                           np.array([1]), k=3)
    assert m["mrr"] == pytest.approx(1 / 1.5) and m["hit_rate@3"] == 1.0


def test_evaluate_last_item_batches_equal_the_retrieval_functions_on_one_matrix():
    rng = np.random.default_rng(3)
    n_users, n_items = 2100, 30  # 3 batches of the evaluator
    scores = rng.integers(0, 8, size=(n_users, n_items)).astype(np.float32)  # many ties
    histories = [rng.choice(n_items, size=rng.integers(0, 4), replace=False) for _ in range(n_users)]
    targets = rng.integers(0, n_items, size=n_users)
    position = {id(h): u for u, h in enumerate(histories)}
    m = evaluate_last_item(lambda hs: scores[[position[id(h)] for h in hs]], histories, targets, k=10)
    relevant = [set() if t in h else {int(t)} for t, h in zip(targets, histories)]
    ranked = top_k(lambda a, b: scores[a:b], n_users, 10, histories)
    expected = ranking_metrics(ranked, relevant, [10])
    assert m["num_queries"] == expected["num_queries"] == sum(map(bool, relevant))
    assert m["hit_rate@10"] == pytest.approx(expected["hit_rate@10"])
    assert m["ndcg@10"] == pytest.approx(expected["ndcg@10"])
    assert m["mrr"] == pytest.approx(full_rank_mrr(lambda a, b: scores[a:b], relevant, histories))


def test_evaluate_last_item_rejects_bad_input():
    with pytest.raises(ValueError, match="exclude has 1 entries"):
        evaluate_last_item(user_scores, [np.array([0])] * 2, np.array([1, 1]), exclude=[np.array([0])])
    with pytest.raises(ValueError, match="targets is empty"):
        evaluate_last_item(user_scores, [], np.array([], np.int64))
