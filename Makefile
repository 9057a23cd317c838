# Two set-up commands for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv from nothing when it is absent (or when setup.cfg changed).
PYTHON ?= python3
VENV ?= .venv
DATASET ?= synthetic
SHARED_ML ?= $(abspath ../shared/data/ml-latest-small)
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench clean help

help:
	@echo "make demo [DATASET=movielens/latest-small]  train -> index -> export -> recommendations"
	@echo "make test                                   default test suite (slow tests excluded)"
	@echo "make test-slow                              the slow end-to-end tests (CI runs both)"
	@echo "make bench                                  benchmarks -> bench/results/*.json"

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/tfrs-app demo --dataset $(DATASET) $(if $(filter movielens/%,$(DATASET)),--config pipelines/configs/movielens.yaml $(if $(wildcard $(SHARED_ML)/ml-latest-small.zip),--manual-dir $(SHARED_ML)))

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/index.py
	$(BIN)/python bench/retrieval_quality.py
	$(BIN)/python bench/ranker.py
	$(BIN)/python bench/thresholds.py
	$(BIN)/python bench/delayed_feedback.py
	$(BIN)/python bench/related.py
	$(BIN)/python bench/cold_dropout.py
	$(BIN)/python bench/watchnext.py
	$(BIN)/python bench/sessions.py
	$(BIN)/python bench/serving.py
	test -d runs/demo/ranker/thresholds || $(BIN)/tfrs-app demo
	$(BIN)/python bench/mmr.py --run-dir runs/demo

clean:
	rm -rf runs .pytest_cache
