"""Early stopping on a validation ranking metric, with the best epoch's weights restored.

Keras' ``EarlyStopping`` watches a logged quantity and keeps the best weights in memory. A
retrieval model's useful quantity (validation Recall@K over the whole catalog) is not a batch
metric, and an interrupted run (``BackupAndRestore``) must remember which epoch was best, so
this callback evaluates after every epoch, writes the best weights and its state to disk, and
puts the value into ``logs`` (TensorBoard shows it as ``val_<metric>``). Test data never
reaches it: the caller hands it a function over the validation split.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable, Optional

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.io import atomic_write_dir, atomic_write_json, read_json

log = logging.getLogger(__name__)


class BestEpoch(tf.keras.callbacks.Callback):
    """After each epoch: ``value = evaluate()[monitor]`` (higher is better). A new best writes
    ``checkpoint``'s objects to ``directory/weights``; ``patience`` epochs without a gain stop
    training (0: never stop, only keep the best); at the end the best weights are read back.

    ``history``: [(epoch, value)], 1-based epochs; ``best_epoch`` / ``best_value`` after fit.
    """

    def __init__(self, evaluate: Callable[[], dict], monitor: str, patience: int, directory: Path,
                 checkpoint: tf.train.Checkpoint, fingerprint: str = ""):
        super().__init__()
        self.fingerprint = fingerprint  # what the state belongs to (config + data): another run's is discarded
        self.evaluate, self.monitor, self.patience = evaluate, monitor, patience
        self.directory = Path(directory)
        self.checkpoint = checkpoint
        self.history: list[tuple[int, float]] = []
        self.losses: list[float] = []
        self.best_epoch: Optional[int] = None
        self.best_value = float("-inf")
        self.finished = False
        self._state = self.directory / "state.json"
        self.load()

    def load(self) -> None:
        """Picks up what an interrupted (or finished) fit in the same directory measured."""
        if self._state.exists():
            try:
                state = read_json(self._state)
            except ValueError as error:
                state, why = {}, str(error)
            else:
                why = "early-stopping state of another config or data"
            if state.get("fingerprint") != self.fingerprint or state.get("monitor") != self.monitor:
                log.warning("%s: %s; starting over", self.directory, why)
                shutil.rmtree(self.directory, ignore_errors=True)
                return
            self.history = [tuple(h) for h in state["history"]]
            self.losses = list(state.get("losses", []))
            self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
            self.finished = bool(state.get("finished", False))

    def _write(self) -> None:
        atomic_write_json(self._state, {"history": self.history, "losses": self.losses, "best_epoch": self.best_epoch,
                                        "best_value": self.best_value, "monitor": self.monitor,
                                        "finished": self.finished, "fingerprint": self.fingerprint})

    def on_train_begin(self, logs=None):
        self.load()

    def on_epoch_end(self, epoch, logs=None):
        value = float(self.evaluate()[self.monitor])
        number = epoch + 1
        # an epoch measured before a kill but not backed up runs again: keep its new value only
        keep = [i for i, (e, _) in enumerate(self.history) if e < number]
        self.history = [self.history[i] for i in keep]
        self.losses = [self.losses[i] for i in keep if i < len(self.losses)]
        self.history.append((number, value))
        if logs is not None:
            self.losses.append(float(logs.get("loss", float("nan"))))
            logs[f"val_{self.monitor}"] = value
        if value > self.best_value:
            self.best_epoch, self.best_value = number, value
            atomic_write_dir(self.directory / "weights", lambda tmp: self.checkpoint.write(str(tmp / "weights")))
        self._write()
        log.info("epoch %d: val %s %.4f (best %.4f at epoch %d)", number, self.monitor, value, self.best_value,
                 self.best_epoch)
        if self.patience and number - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.restore()
        self.finished = True
        self._write()

    def restore(self) -> None:
        """Reads the best epoch's weights back into the checkpoint's objects."""
        if self.best_epoch is not None and (self.directory / "weights" / "weights.index").exists():
            self.checkpoint.read(str(self.directory / "weights" / "weights")).assert_existing_objects_matched()

    def summary(self) -> dict:
        return {"monitor": self.monitor, "best_epoch": self.best_epoch, "best_value": self.best_value,
                "history": [{"epoch": e, "value": v} for e, v in self.history]}
