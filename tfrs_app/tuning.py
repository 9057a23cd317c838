"""``tfrs-app tune``: keras-tuner search over a stage's hyperparameters, on validation data only.

keras-tuner sees Keras 3 and rejects the tf-keras models TFRS needs when they come out of a
hypermodel's ``build()``; so the tuner is subclassed and ``run_trial`` trains the stage itself
(``retrieval.train.run`` or ``ranking.train.run``) from a config with the trial's values, in
the trial's own run directory, and returns the objective:

- retrieval: validation Recall@100 (``val.model.recall@100``), maximised;
- ranker: the mean validation AUC over the heads, maximised.

Test metrics are computed by the stages but never read here. The search state lives in
``--directory`` (keras-tuner's oracle files), so an interrupted search resumes where it
stopped when called again with the same directory. The best trial's values are written as a
YAML config (``best.yaml``) that ``--config`` of every pipeline accepts.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from tfrs_app.config import HEADS, Config, load_config
from tfrs_app.io import atomic_write_text

log = logging.getLogger(__name__)
TUNERS = ("random", "hyperband", "bayesian")


def define_space(hp, stage: str) -> dict[str, Any]:
    """Declares the search space on ``hp``; returns {dotted config key: value} for this trial."""
    if stage == "retrieval":
        depth = hp.Int("depth", 0, 2)
        width = hp.Choice("width", [64, 128, 256])
        return {
            "retrieval.embedding_dim": hp.Choice("embedding_dim", [32, 64, 128]),
            "retrieval.hidden_layers": [width] * depth,
            "retrieval.learning_rate": hp.Float("learning_rate", 1e-3, 1e-2, sampling="log"),
            "retrieval.id_dropout": hp.Float("id_dropout", 0.0, 0.5, step=0.1),
            "retrieval.use_logq": hp.Boolean("use_logq", default=True),
            "retrieval.item_bias": hp.Boolean("item_bias", default=True),
            "retrieval.temperature": hp.Float("temperature", 0.05, 1.0, sampling="log"),
            "retrieval.use_history": hp.Boolean("use_history", default=True),
            "retrieval.num_sampled_negatives": hp.Choice("num_sampled_negatives", [0, 256, 1024]),
            "retrieval.lr_schedule": hp.Choice("lr_schedule", ["constant", "cosine"]),
        }
    if stage == "ranker":
        depth = hp.Int("depth", 1, 3)
        width = hp.Choice("width", [64, 128, 256])
        return {
            "ranker.embedding_dim": hp.Choice("embedding_dim", [16, 32, 64]),
            "ranker.trunk_layers": [width] * depth,
            "ranker.learning_rate": hp.Float("learning_rate", 5e-4, 5e-3, sampling="log"),
            "ranker.dropout": hp.Float("dropout", 0.1, 0.5, step=0.1),
            "ranker.loss_weights": {head: hp.Float(f"loss_weight_{head}", 0.5, 2.0, step=0.5) if head != "engagement"
                                    else 1.0 for head in HEADS},
        }
    raise ValueError(f"--stage: must be retrieval or ranker, got {stage!r}")


def objective(stage: str, metrics: dict) -> float:
    """The validation number a trial is judged by (never a test metric)."""
    if stage == "retrieval":
        return float(metrics["val"]["model"]["recall@100"])
    aucs = [metrics["val"][h]["model"]["auc"] for h in HEADS if h in metrics["val"]]
    return float(sum(aucs) / len(aucs))


def make_tuner(base: Config, stage: str, kind: str, max_trials: int, directory: str, seed: int = 0,
               epochs: int | None = None):
    """A keras-tuner tuner whose trials train ``stage`` from ``base`` plus the trial's values."""
    import keras_tuner as kt

    if kind not in TUNERS:
        raise ValueError(f"--tuner: must be one of {TUNERS}, got {kind!r}")
    if max_trials < 1:
        raise ValueError(f"--max-trials: must be >= 1, got {max_trials}")
    section = base.retrieval if stage == "retrieval" else base.ranker
    max_epochs = epochs or section.epochs
    goal = kt.Objective("val_recall_at_100" if stage == "retrieval" else "val_mean_auc", direction="max")

    class ConfigTrials:
        """Mixin: a trial = the stage's own ``run`` on a config, in the trial's run directory."""

        def run_trial(self, trial, *args, **kwargs):
            from tfrs_app.config import replace

            hp = trial.hyperparameters
            changes = define_space(hp, stage)
            trial_epochs = hp.values.get("tuner/epochs", max_epochs)  # Hyperband's budget for this trial
            changes[f"{stage}.epochs"] = int(trial_epochs)
            changes["run_dir"] = str(Path(directory) / "trials" / trial.trial_id)
            if stage == "retrieval":
                changes["retrieval.baselines"] = ()  # a trial is judged on the towers' validation alone
                changes["retrieval.refit_on_validation"] = False
            cfg = replace(base, **changes)
            if stage == "retrieval":
                from tfrs_app.retrieval.train import run
            else:
                from tfrs_app.ranking.train import run
            value = objective(stage, run(cfg))
            log.info("trial %s: %s = %.4f with %s", trial.trial_id, goal.name, value, hp.values)
            return {goal.name: value}

    common = dict(objective=goal, directory=directory, project_name=stage, overwrite=False, seed=seed)
    if kind == "random":
        cls = type("RandomConfigSearch", (ConfigTrials, kt.RandomSearch), {})
        tuner = cls(hypermodel=None, max_trials=max_trials, **common)
    elif kind == "bayesian":
        cls = type("BayesianConfigSearch", (ConfigTrials, kt.BayesianOptimization), {})
        tuner = cls(hypermodel=None, max_trials=max_trials, **common)
    else:
        cls = type("HyperbandConfigSearch", (ConfigTrials, kt.Hyperband), {})
        tuner = cls(hypermodel=None, max_epochs=max(2, max_epochs), max_consecutive_failed_trials=1, **common)
        tuner.oracle.max_trials = max_trials
    define_space(tuner.oracle.hyperparameters, stage)  # declare the space before the first trial
    tuner.trial_epochs = max_epochs
    return tuner


def tune(base: Config, stage: str, kind: str = "random", max_trials: int = 10, directory: str | None = None,
         output: str | None = None, epochs: int | None = None) -> tuple[Path, dict]:
    """Runs (or resumes) the search; writes the best config as YAML; returns (path, best values)."""
    directory = directory or str(Path(base.run_dir) / f"tune-{stage}")
    tuner = make_tuner(base, stage, kind, max_trials, directory, base.seed, epochs)
    tuner.search()
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise RuntimeError(f"{directory}: the search finished without a successful trial")
    trial = best[0]
    from tfrs_app.config import replace

    changes = define_space(trial.hyperparameters, stage)
    changes[f"{stage}.epochs"] = int(trial.hyperparameters.values.get("tuner/epochs", tuner.trial_epochs))
    best_cfg = replace(base, **changes)
    path = Path(output or Path(directory) / "best.yaml")
    header = (f"# best of {len(tuner.oracle.trials)} {kind} trials for {stage} "
              f"({tuner.oracle.objective.name} = {trial.score:.4f} on validation); from tfrs-app tune\n")
    atomic_write_text(path, header + yaml.safe_dump(best_cfg.to_dict(), sort_keys=False))
    load_config(path)  # what we wrote must load
    return path, {"score": trial.score, "values": trial.hyperparameters.values, "trials": len(tuner.oracle.trials)}
