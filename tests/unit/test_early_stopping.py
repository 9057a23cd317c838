"""BestEpoch: stops after `patience` epochs without a validation gain and restores the best epoch."""
import json

import numpy as np

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.retrieval.early_stopping import BestEpoch


class Snapshot(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])


def _fit(tmp_path, values, patience, epochs=8):
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 3)), np.random.default_rng(1).normal(size=(64, 1))
    scripted = iter(values)
    best = BestEpoch(lambda: {"recall@100": next(scripted)}, "recall@100", patience, tmp_path / "best",
                     tf.train.Checkpoint(model=model))
    snapshot = Snapshot()
    history = model.fit(x, y, epochs=epochs, verbose=0, callbacks=[best, snapshot])
    return model, best, snapshot, history


def test_stops_after_patience_and_restores_the_best_epoch(tmp_path):
    model, best, snapshot, history = _fit(tmp_path, [0.1, 0.5, 0.3, 0.2, 0.9, 0.9], patience=2)
    assert len(snapshot.weights) == 4  # epochs 3 and 4 brought no gain over epoch 2: stop
    assert best.best_epoch == 2 and best.best_value == 0.5
    for restored, at_best in zip(model.get_weights(), snapshot.weights[1]):
        np.testing.assert_array_equal(restored, at_best)  # epoch 2's weights, not epoch 4's
    assert not np.allclose(snapshot.weights[1][0], snapshot.weights[3][0])  # training did move them
    assert history.history["val_recall@100"] == [0.1, 0.5, 0.3, 0.2]
    state = json.loads((tmp_path / "best" / "state.json").read_text())
    assert state["best_epoch"] == 2 and [h[1] for h in state["history"]] == [0.1, 0.5, 0.3, 0.2]


def test_patience_zero_runs_every_epoch_and_still_keeps_the_best(tmp_path):
    model, best, snapshot, _ = _fit(tmp_path, [0.2, 0.4, 0.1], patience=0, epochs=3)
    assert len(snapshot.weights) == 3 and best.best_epoch == 2
    np.testing.assert_array_equal(model.get_weights()[0], snapshot.weights[1][0])


def test_a_resumed_fit_remembers_the_interrupted_runs_best(tmp_path):
    _fit(tmp_path, [0.6, 0.2], patience=0, epochs=2)
    again = BestEpoch(lambda: {}, "recall@100", 2, tmp_path / "best", tf.train.Checkpoint())
    again.on_train_begin()
    assert again.best_epoch == 1 and again.best_value == 0.6 and len(again.history) == 2
