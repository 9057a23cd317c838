"""Mixed negative sampling: the mixture logQ probability, the sampler and the hard-negative mask."""
import numpy as np
import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.retrieval.negatives import (NegativeSampler, hard_negative_mask, mixture_probability,
                                          sampling_distribution)


def test_mixture_probability_hand_computed():
    # catalog of 3 items with training frequencies p = [0.5, 0.25, 0.25]; uniform q = 1/3.
    # A batch of B = 2 and S = 2 sampled rows: q_mix(j) = (2 p(j) + 2 q(j)) / 4.
    p = tf.constant([0.5, 0.25, 0.25])
    q = tf.constant([1 / 3, 1 / 3, 1 / 3])
    mixed = mixture_probability(p, q, tf.constant(2), 2).numpy()
    np.testing.assert_allclose(mixed, [(1.0 + 2 / 3) / 4, (0.5 + 2 / 3) / 4, (0.5 + 2 / 3) / 4], rtol=1e-6)
    np.testing.assert_allclose(mixed, [0.4166667, 0.2916667, 0.2916667], rtol=1e-6)
    # no sampled rows: plain in-batch logQ (q_mix = p)
    np.testing.assert_allclose(mixture_probability(p, q, tf.constant(2), 0).numpy(), p.numpy(), rtol=1e-6)


def test_sampling_distribution_uniform_and_popularity():
    np.testing.assert_allclose(sampling_distribution(np.array([9, 0, 3]), "uniform", 0.75), [1 / 3] * 3)
    # (count + 1) ** alpha: alpha = 1 -> [10, 1, 4] / 15; alpha = 0 is uniform
    np.testing.assert_allclose(sampling_distribution(np.array([9, 0, 3]), "popularity", 1.0), [10 / 15, 1 / 15, 4 / 15])
    np.testing.assert_allclose(sampling_distribution(np.array([9, 0, 3]), "popularity", 0.0), [1 / 3] * 3)
    with pytest.raises(ValueError, match="retrieval.negative_sampling"):
        sampling_distribution(np.array([1, 2]), "hard", 1.0)


def _catalog(n):
    return {"item_id": [f"i{j}" for j in range(n)], "item_title": [f"t{j}" for j in range(n)],
            "item_genres": ["g"] * n}


def test_sampler_draws_from_q_and_reports_both_probabilities():
    tf.random.set_seed(0)
    q = np.array([0.7, 0.1, 0.1, 0.1])
    p = np.array([0.4, 0.3, 0.2, 0.1])
    sampler = NegativeSampler(_catalog(4), p, q, num_sampled=4000, seed=1)
    sampled, sampled_p, sampled_q, batch_q = sampler(tf.constant(["i3", "i0", "unknown"]))
    rows = np.array([int(s[1:]) for s in sampled["item_id"].numpy().astype(str)])
    assert abs(np.mean(rows == 0) - 0.7) < 0.03  # drawn from q, not from p
    np.testing.assert_allclose(sampled_p.numpy(), p[rows], rtol=1e-6)
    np.testing.assert_allclose(sampled_q.numpy(), q[rows], rtol=1e-6)
    assert sampled["item_title"].numpy()[0].decode() == f"t{rows[0]}"  # features travel with the id
    np.testing.assert_allclose(batch_q.numpy(), [0.1, 0.7, 0.1], rtol=1e-6)  # unknown id: the smallest q
    with pytest.raises(ValueError, match="num_sampled_negatives"):
        NegativeSampler(_catalog(4), p, q, num_sampled=0)


def test_hard_negative_mask_keeps_the_best_sampled_rows_but_never_the_positive():
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    sampled = tf.constant([[0.9, 0.0], [0.5, 0.5], [0.0, 0.8], [1.0, 0.0]])  # ids s0, s1, s2, i0
    mask = hard_negative_mask(query, sampled, tf.constant(["i0", "i1"]), tf.constant(["s0", "s1", "s2", "i0"]),
                              tf.constant(2), num_hard=2).numpy()
    # query 0 (positive i0): scores s0 .9, s1 .5, s2 0, i0 1.0 (its own item: an accidental hit) -> keeps s0, s1
    # query 1 (positive i1): scores 0, .5, .8, 0 -> keeps s2, s1; every in-batch column is kept
    assert mask.tolist() == [[True, True, True, True, False, False],
                             [True, True, False, True, True, False]]
