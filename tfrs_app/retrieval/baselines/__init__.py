"""Classical retrieval baselines (numpy/scipy only, no TensorFlow) for benchmarks and tests.

Every baseline: ``Cls(**hyper_params).fit(train, num_items, item_rows)`` then
``score(histories) -> float32 [len(histories), num_items]`` (higher = better; seen items are not
masked). See ``base`` for the shapes, ``BASELINES`` maps each ``name`` to its class.
"""
from tfrs_app.retrieval.baselines.base import Baseline, interaction_matrix
from tfrs_app.retrieval.baselines.popularity import Popularity, RecentPopularity
from tfrs_app.retrieval.baselines.item_knn import ItemKNN
from tfrs_app.retrieval.baselines.ease import EASE

BASELINES = {"popularity": Popularity, "recent_popularity": RecentPopularity, "item_knn": ItemKNN, "ease": EASE}

__all__ = ["Baseline", "interaction_matrix", "Popularity", "RecentPopularity", "ItemKNN", "EASE", "BASELINES"]
