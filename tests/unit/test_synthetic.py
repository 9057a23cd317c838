import numpy as np
import pandas as pd

from tfrs_app.data.synthetic import generate

SMALL = dict(num_users=300, num_items=200, mean_interactions_per_user=20)


def test_deterministic_under_seed():
    a, b, c = generate(seed=1, **SMALL), generate(seed=1, **SMALL), generate(seed=2, **SMALL)
    pd.testing.assert_frame_equal(a.interactions.events, b.interactions.events)
    assert not a.interactions.events["item_id"].equals(c.interactions.events["item_id"])


def test_planted_structure():
    data = generate(num_users=1000, num_items=500, mean_interactions_per_user=30)
    events, truth = data.interactions.events, data.truth
    # Skewed popularity: the top 10% of items take well over 10% of events.
    counts = events["item_id"].value_counts()
    assert counts.iloc[: len(counts) // 10].sum() / len(events) > 0.2  # 2x a uniform catalog
    # Choices follow the planted affinity: chosen items beat random ones on user . item.
    u = events["user_id"].str[1:].astype(int).to_numpy()
    i = events["item_id"].str[1:].astype(int).to_numpy()
    chosen = np.einsum("ij,ij->i", truth.user_factors[u], truth.item_factors[i])
    random = np.einsum("ij,ij->i", truth.user_factors[u], truth.item_factors[np.random.default_rng(0).permutation(i)])
    assert chosen.mean() > random.mean() + 0.5
    # Content follows the latent factors: items sharing both genres are closer than random pairs.
    items = data.interactions.items
    f = truth.item_factors / np.linalg.norm(truth.item_factors, axis=1, keepdims=True)
    same = items.groupby("item_genres").indices
    within = np.mean([(f[rows] @ f[rows].T).mean() for rows in same.values() if len(rows) > 3])
    assert within > (f @ f.T).mean() + 0.2
    # Labels are binary, aligned with their ground truth, and unsafe items get flagged.
    assert set(np.unique(events["satisfaction"])) == {0.0, 1.0}
    assert abs(events["satisfaction"].mean() - truth.satisfaction_prob.mean()) < 0.02
    unsafe = truth.unsafe[i]
    assert events["responsibility"][unsafe].mean() < 0.3 < 0.9 < events["responsibility"][~unsafe].mean()
