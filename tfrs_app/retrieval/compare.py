"""Classical baselines beside the two towers, on the run's own splits, tuned on validation only.

For each name in ``retrieval.baselines`` (see ``baselines/``), every point of its grid is
fitted on the training split and scored on the validation split (histories: train); the point
with the best validation ``monitor`` is then scored on test (histories: train + validation),
exactly like the towers, through ``evaluate.evaluate_baseline``; with ``refit`` the chosen
point is first refitted on train + validation, as the towers are. Without a validation split
each baseline keeps its first grid point (its documented default). Test labels never choose
anything.

Grids are small on purpose: EASE^R costs one [m, m] inverse per point (~10 s at 9k items on
2 cores) and is skipped, with a warning, above ``max_ease_items`` training items.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import pandas as pd

from tfrs_app.data.splits import Splits
from tfrs_app.retrieval.baselines import BASELINES
from tfrs_app.retrieval.evaluate import EvalSet, evaluate_baseline

log = logging.getLogger(__name__)

GRIDS: dict[str, list[dict]] = {
    "popularity": [{}],
    "recent_popularity": [{"window_days": d} for d in (30.0, 7.0, 90.0, 365.0)],
    "item_knn": [{"num_neighbors": n} for n in (100, 20, 50, 200, 500)],
    "ease": [{"l2": l2} for l2 in (500.0, 100.0, 2000.0)],
}
MAX_EASE_ITEMS = 20000


def evaluate_baselines(names: Sequence[str], splits: Splits, catalog: pd.DataFrame, val_set: EvalSet | None,
                       test_set: EvalSet, ks: Sequence[int], monitor: str,
                       refit: bool = False, max_ease_items: int = MAX_EASE_ITEMS) -> dict[str, dict]:
    """{name: {"val": metrics or None, "test": metrics, "params": chosen, "fit_seconds": s,
    "grid": [{"params", "val_<monitor>"}]}} for each baseline (see the module docstring)."""
    row_of = pd.Series(np.arange(len(catalog)), index=catalog["item_id"].to_numpy())
    train = splits.train[splits.train["item_id"].isin(row_of.index)]
    item_rows = row_of[train["item_id"]].to_numpy()
    if refit:
        known = splits.known()
        known = known[known["item_id"].isin(row_of.index)]
    out = {}
    for name in names:
        if name not in BASELINES:
            raise ValueError(f"retrieval.baselines: unknown baseline {name!r}; choose from {sorted(BASELINES)}")
        if name == "ease" and train["item_id"].nunique() > max_ease_items:
            log.warning("EASE^R skipped: %d training items > %d (a dense [m, m] inverse)",
                        train["item_id"].nunique(), max_ease_items)
            continue
        grid = GRIDS[name] if val_set is not None else GRIDS[name][:1]
        tried, best = [], None
        for params in grid:
            started = time.perf_counter()
            model = BASELINES[name](**params).fit(train, len(catalog), item_rows)
            seconds = time.perf_counter() - started
            val = evaluate_baseline(model, val_set, ks) if val_set is not None else None
            tried.append({"params": params, f"val_{monitor}": None if val is None else val[monitor],
                          "fit_seconds": seconds})
            if best is None or (val is not None and val[monitor] > best[1][monitor]):
                best = (model, val, params, seconds)
        model, val, params, seconds = best
        if refit:
            started = time.perf_counter()
            model = BASELINES[name](**params).fit(known, len(catalog), row_of[known["item_id"]].to_numpy())
            seconds = time.perf_counter() - started
        out[name] = {"val": val, "test": evaluate_baseline(model, test_set, ks), "params": params,
                     "fit_seconds": seconds, "grid": tried}
        log.info("baseline %s %s: test %s %.4f", name, params, monitor, out[name]["test"][monitor])
    return out
