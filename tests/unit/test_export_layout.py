"""The TF-Serving layout under faults: one version per export, a lock, no leftovers, complete
versions only. A tiny tf.Module SavedModel stands in for the real exports (no training)."""
from __future__ import annotations

import errno
import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import tfrs_app  # noqa: F401
import tensorflow as tf

from tfrs_app.serving.errors import ModelLoadError
from tfrs_app.serving.export import LOCK, ExportError, export_lock, publish, publish_all
from tfrs_app.serving.load import load_saved_model, resolve_version
from tfrs_app.serving.tf_serving import describe, model_dirs, write_models_config


class Tiny(tf.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = tf.Variable(scale)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": x * self.scale}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two SavedModels of the tiny module (scale 1 and 2): copy one in as a version."""
    root = tmp_path_factory.mktemp("tiny")
    for scale in (1.0, 2.0):
        module = Tiny(scale)
        tf.saved_model.save(module, str(root / str(int(scale))), signatures=module.serve)
    return root


@pytest.fixture
def copy(saved):
    """write(tmp) that copies the scale-1 SavedModel into tmp."""
    return lambda tmp: shutil.copytree(saved / "1", tmp)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def versions(base: Path) -> dict[str, list[str]]:
    """Every entry under each model folder (hidden ones too), by model."""
    return {m.name: sorted(p.name for p in m.iterdir()) for m in sorted(base.iterdir()) if m.is_dir()}


# ---- item 11: one version per export, the lock, no leftovers -------------------------------


def test_one_export_is_one_version_past_the_highest_of_any_model(tmp_path, copy):
    base = tmp_path / "saved_models"
    publish(base / "retrieval", copy, version=1)
    publish(base / "ranker", copy, version=3)
    paths = publish_all(base, {"retrieval": copy, "ranker": copy, "recommender": copy})
    assert {name: p.name for name, p in paths.items()} == {"retrieval": "4", "ranker": "4", "recommender": "4"}
    assert publish(base / "retrieval", copy).name == "5"  # a model exported alone takes a fresh number too
    assert versions(base) == {"ranker": ["3", "4"], "recommender": ["4"], "retrieval": ["1", "4", "5"]}
    assert not (base / LOCK).exists()  # the lock file goes with the lock


def test_temp_folders_of_killed_exports_are_removed_by_the_next(tmp_path, copy):
    base = tmp_path / "saved_models"
    killed = base / "retrieval" / f".tmp-5-{dead_pid()}"
    (killed / "variables").mkdir(parents=True)
    (killed / "saved_model.pb").write_bytes(b"half")
    reused = base / "ranker" / ".tmp-5-1"  # a killed export's pid, now another live process: still stale
    reused.mkdir(parents=True)
    publish_all(base, {"retrieval": copy})  # under the lock no other export is writing
    assert not killed.exists() and not reused.exists()
    assert versions(base) == {"ranker": [], "retrieval": ["1"]}


@pytest.mark.parametrize("failure", [RuntimeError("model 2 broke"), KeyboardInterrupt()])
def test_a_model_failing_midway_publishes_nothing_of_the_export(tmp_path, copy, failure):
    base = tmp_path / "saved_models"
    publish_all(base, {"retrieval": copy, "ranker": copy})
    config = (base / "models.config").read_text()

    def broken(tmp: Path):
        copy(tmp)
        assert not (base / "retrieval" / "2").exists()  # the first model is not renamed in before all are written
        raise failure

    with pytest.raises(type(failure)):
        publish_all(base, {"retrieval": copy, "ranker": broken, "recommender": copy})
    assert versions(base) == {"ranker": ["1"], "retrieval": ["1"]}  # no version 2 anywhere, no temp folder
    assert (base / "models.config").read_text() == config
    assert publish_all(base, {"retrieval": copy})["retrieval"].name == "2"  # and the next export goes on


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   tf.errors.ResourceExhaustedError(None, None, "write: No space left on device")])
def test_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, copy, error):
    base = tmp_path / "saved_models"
    publish_all(base, {"retrieval": copy})

    def full(tmp: Path):
        copy(tmp)
        raise error

    with pytest.raises(ExportError, match="the disk is full") as raised:
        publish_all(base, {"retrieval": copy, "retrieval_scann": full})
    assert str(base) in str(raised.value)
    assert versions(base) == {"retrieval": ["1"]}


def test_two_exports_at_once_take_turns_under_the_lock(tmp_path, copy):
    base = tmp_path / "saved_models"
    inside, most, results, errors = [0], [0], [], []

    def slow(tmp: Path):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.3)
        copy(tmp)
        inside[0] -= 1

    def export():
        try:
            results.append(publish(base / "retrieval", slow).name)
        except BaseException as error:  # noqa: BLE001  reported below
            errors.append(error)

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(results) == ["1", "2"] and most[0] == 1
    assert versions(base) == {"retrieval": ["1", "2"]}


def test_a_held_lock_times_out_with_an_error_naming_it(tmp_path, copy):
    base = tmp_path / "saved_models"
    base.mkdir()
    with export_lock(base):
        with pytest.raises(ExportError, match=r"\.export\.lock: another export .* holds this lock"):
            publish_all(base, {"retrieval": copy}, lock_timeout_s=0.3)
    assert not (base / "retrieval").exists()
    assert publish_all(base, {"retrieval": copy})["retrieval"].name == "1"


# ---- item 12: complete versions only -------------------------------------------------------


@pytest.fixture
def broken_layout(tmp_path, saved):
    """model/1 scale 1, model/2 scale 2, then three incomplete newer versions; zero/1 has a
    zero-byte saved_model.pb, empty/1 is an empty folder."""
    base = tmp_path / "saved_models"
    for version, scale in ((1, 1), (2, 2), (3, 1), (4, 1)):
        shutil.copytree(saved / str(scale), base / "model" / str(version))
    (base / "model" / "3" / "saved_model.pb").write_bytes(b"")
    shutil.rmtree(base / "model" / "4" / "variables")
    (base / "model" / "5").mkdir()
    shutil.copytree(saved / "1", base / "zero" / "1")
    (base / "zero" / "1" / "saved_model.pb").write_bytes(b"")
    (base / "empty" / "1").mkdir(parents=True)
    return base


def test_inspect_reports_each_version_and_never_fails_the_listing(broken_layout):
    shown = describe(broken_layout)
    assert "versions [1, 2, 3, 4, 5] (TF Serving serves 5)" in shown
    assert "version 2: complete" in shown
    assert "version 3: INCOMPLETE (saved_model.pb is empty)" in shown
    assert "version 4: INCOMPLETE (no variables/variables.index)" in shown
    assert "version 5: INCOMPLETE (no saved_model.pb): TF Serving picks this one and fails on it" in shown
    assert "tfrs_app's loader uses version 2" in shown and "signature serving_default:" in shown
    assert f"{broken_layout / 'zero'}: versions [1]" in shown and f"{broken_layout / 'empty'}: versions [1]" in shown
    assert shown.count("no complete version: nothing here can be loaded") == 2
    zero, empty = broken_layout / "zero" / "1", broken_layout / "empty" / "1"
    assert describe(zero) == f"{zero}: INCOMPLETE (saved_model.pb is empty)"
    assert describe(empty) == f"{empty}: INCOMPLETE (no saved_model.pb)"


def test_models_config_lists_only_models_with_a_complete_version(broken_layout):
    assert model_dirs(broken_layout) == [broken_layout / "model"]
    config = write_models_config(broken_layout).read_text()
    assert 'name: "model"' in config and "zero" not in config and "empty" not in config


def test_loading_a_base_path_falls_back_to_the_newest_complete_version(broken_layout, caplog):
    with caplog.at_level(logging.WARNING, logger="tfrs_app.serving.load"):
        assert resolve_version(broken_layout / "model") == broken_layout / "model" / "2"
    warning = caplog.text
    assert "using version 2" in warning and "version 5: no saved_model.pb" in warning
    assert "version 4: no variables/variables.index" in warning and "version 3: saved_model.pb is empty" in warning
    model = load_saved_model(broken_layout / "model")
    assert model.signatures["serving_default"](x=tf.constant([3.0]))["y"].numpy().tolist() == [6.0]
    with pytest.raises(ModelLoadError, match="cannot load SavedModel: no complete version"):
        resolve_version(broken_layout / "zero")


# ---- export checks every precondition before writing ---------------------------------------


def fake_trained(base_dir: Path):
    return SimpleNamespace(cfg=SimpleNamespace(export=SimpleNamespace(base_dir=str(base_dir))))


def test_export_names_a_missing_calibration_before_writing_anything(tmp_path, monkeypatch):
    import tfrs_app.ranking.train
    from tfrs_app import stages

    run_dir, base = tmp_path / "run", tmp_path / "saved_models"
    (run_dir / "ranker" / "checkpoint").mkdir(parents=True)
    (run_dir / "ranker" / "config.yaml").write_text("{}\n")
    (run_dir / "ranker" / "checkpoint" / "ranker.index").write_text("")
    monkeypatch.setattr(tfrs_app.ranking.train, "load_trained_ranker", lambda run_dir: fake_trained(base))
    with pytest.raises(FileNotFoundError, match=r"the ranker is trained but not calibrated: run "
                                                r"`tfrs-app calibrate-thresholds --run-dir .*run` first"):
        stages.export(run_dir)
    (run_dir / "retrieval" / "checkpoint").mkdir(parents=True)  # retrieval trained too: still refused, first
    monkeypatch.setattr(stages, "load_trained", lambda run_dir: pytest.fail("loaded retrieval before refusing"))
    with pytest.raises(FileNotFoundError, match="trained but not calibrated"):
        stages.export(run_dir)
    assert not base.exists()


def test_export_writes_all_five_models_as_one_version_or_none(tmp_path, monkeypatch, copy):
    import tfrs_app.ranking.train
    from tfrs_app import stages

    run_dir, base = tmp_path / "run", tmp_path / "saved_models"
    (run_dir / "ranker" / "thresholds").mkdir(parents=True)
    (run_dir / "ranker" / "checkpoint").mkdir(parents=True)
    (run_dir / "ranker" / "checkpoint" / "ranker.index").write_text("")
    (run_dir / "ranker" / "config.yaml").write_text("{}\n")
    (run_dir / "retrieval" / "checkpoint").mkdir(parents=True)
    publish(base / "ranker", copy, version=7)
    monkeypatch.setattr(tfrs_app.ranking.train, "load_trained_ranker", lambda run_dir: fake_trained(base))
    monkeypatch.setattr(stages, "load_trained", lambda run_dir: fake_trained(base))
    monkeypatch.setattr(stages, "_retrieval_writes",
                        lambda run_dir, trained: {"retrieval": copy, "retrieval_scann": copy})
    monkeypatch.setattr(stages, "_ranker_write", lambda run_dir, trained: copy)

    def disk_full(tmp: Path):
        copy(tmp)
        raise OSError(errno.ENOSPC, "No space left on device")

    last = {"write": disk_full}  # the last model of the export fails
    monkeypatch.setattr(stages, "_recommender_writes", lambda run_dir, trained, ranker: {
        "recommender": copy, "recommender_scann": lambda tmp: last["write"](tmp)})
    with pytest.raises(ExportError, match="disk is full"):
        stages.export(run_dir)
    assert versions(base) == {"ranker": ["7"]} and not (run_dir / "exports.json").exists()

    last["write"] = copy
    paths = stages.export(run_dir)
    assert sorted(paths) == ["ranker", "recommender", "recommender_scann", "retrieval", "retrieval_scann"]
    assert {Path(p).name for p in paths.values()} == {"8"}
    config = (base / "models.config").read_text()
    assert all(f'name: "{name}"' in config for name in paths)


def test_cli_export_reports_a_locked_or_full_base_dir_without_a_traceback(tmp_path, monkeypatch, capsys):
    from tfrs_app import stages
    from tfrs_app.cli import main

    def full(run_dir, base_dir=None):
        raise ExportError(f"{tmp_path}: the disk is full (OSError: No space left on device)")

    monkeypatch.setattr(stages, "export", full)
    assert main(["export", "--run-dir", str(tmp_path)]) == 2
    assert f"tfrs-app export: error: {tmp_path}: the disk is full" in capsys.readouterr().err
