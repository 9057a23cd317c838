"""Shared by the pipeline scripts: a clear message when run by a Python without tfrs-app.

``python pipelines/train_retrieval.py`` with the system Python fails on ``import tfrs_app``;
the scripts need the project's environment: ``.venv/bin/python pipelines/...`` (``make
.venv/.installed`` builds it) or any environment with ``pip install -e .``.
"""
import sys

try:
    from tfrs_app.cli import main  # noqa: F401  (re-exported to the scripts)
except ModuleNotFoundError as error:
    sys.exit(f"{sys.argv[0]}: {error}. Run the pipeline scripts with the project's environment: "
             f".venv/bin/python {sys.argv[0]} ... (build it with `make .venv/.installed`), "
             "or `pip install -e .` into yours.")
