"""The CLI as a newcomer meets it: help with examples, --version, config errors before
TensorFlow, no CUDA noise on a CPU machine, pipeline scripts that say how to run them, and a
ranker head without labels refused by name."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*code_or_args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, *code_or_args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_help_has_examples_descriptions_and_version(capsys):
    from tfrs_app import __version__
    from tfrs_app.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "examples:" in top and "tfrs-app validate --config" in top and ".. " not in top and "``" not in top
    for name in ("validate", "train-retrieval", "build-index", "export", "recommend", "inspect", "demo"):
        assert name in top
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    tune = capsys.readouterr().out
    assert "configurations to try" in tune and "search algorithm" in tune and "example:" in tune
    assert "run directory for every artifact" in tune  # --run-dir has help
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"tfrs-app {__version__}"


def test_config_error_comes_before_tensorflow_and_the_run_dir(tmp_path):
    probe = ("import sys; from tfrs_app.cli import main; "
             f"code = main(['train-retrieval', '--set', 'seed=-5', '--run-dir', {str(tmp_path / 'run')!r}]); "
             "print('tensorflow' in sys.modules, code)")
    out = run("-c", probe)
    assert out.stdout.split()[-2:] == ["False", "2"], out.stdout + out.stderr
    assert "seed: must be >= 0" in out.stderr
    assert not (tmp_path / "run").exists()
    probe = probe.replace("'train-retrieval', '--set', 'seed=-5'", "'demo', '--set', 'retrieval.eval_ks=[0]'")
    out = run("-c", probe)
    assert out.stdout.split()[-2:] == ["False", "2"] and "retrieval.eval_ks: must be positive" in out.stderr


@pytest.mark.skipif(any(Path("/dev").glob("nvidia[0-9]*")), reason="a GPU machine: TensorFlow's CUDA log is real there")
def test_no_cuinit_noise_without_a_gpu():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", "import tfrs_app, tensorflow as tf; print(tf.constant(2).numpy())"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "2"
    assert "cuInit" not in out.stderr, out.stderr


def test_pipeline_script_without_the_environment_says_how_to_run_it(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    out = run("pipelines/train_retrieval.py", "--help", python=str(bare / "bin" / "python"))
    assert out.returncode != 0
    assert "Run the pipeline scripts with the project's environment: .venv/bin/python" in out.stderr
    assert "Traceback" not in out.stderr
    ok = run("pipelines/train_retrieval.py", "--help")
    assert ok.returncode == 0 and "--run-dir" in ok.stdout


def test_ranker_head_without_labels_is_refused_by_name():
    from tfrs_app.ranking.examples import RankingExamples
    from tfrs_app.ranking.train import check_labels

    n = 6
    labels = {"engagement": np.array([1, 0, 1, 0, 1, 0], np.float32),
              "satisfaction": np.full(n, np.nan, np.float32),
              "responsibility": np.ones(n, np.float32)}
    examples = RankingExamples({}, labels, {h: np.ones(n, np.float32) for h in labels}, np.ones(n, bool))
    with pytest.raises(ValueError, match="ranker head 'satisfaction': no labels in the training split; the log needs "
                                         "a 'satisfaction' column \\(0/1\\), or 'rating' with data.labels_from_rating"):
        check_labels(examples, {})
    with pytest.raises(ValueError, match="ranker head 'responsibility': labels of one class only \\(all 1\\)"):
        check_labels(examples, {"satisfaction": 0.0})
    check_labels(examples, {"satisfaction": 0.0, "responsibility": 0.0})  # opted out: trains
