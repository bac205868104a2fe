# The README's two commands: `make repro` (run the pipeline) and `make test` (the fast tests).
# Both create .venv and install the project into it first when needed.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
# The venv's tools (dvc, python for the stages, pytest, ruff) come first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

UI_PORT ?= 5000

.PHONY: help install repro test test-all lint check bench bench-seeds bench-tracking bench-memory bench-oneclass ui \
	stack stack-down

help:
	@echo "make repro    - set up .venv and run the pipeline (dvc repro)"
	@echo "make test     - set up .venv and run the fast tests (no pipeline runs, no servers)"
	@echo "make test-all - every test (CI): all but the few that read the project's pipeline run"
	@echo "               beside dvc repro, those after it"
	@echo "make lint     - ruff, the import contracts (lint-imports), zizmor on the workflows"
	@echo "make check    - the metric gate: reports/metrics.json against HEAD's (aelab check)"
	@echo "make bench    - training speed: the article's loop against aelab's"
	@echo "make bench-seeds - a variant's seeds side by side against one after another"
	@echo "make bench-tracking - what MLflow logging adds to make repro; a no-op dvc repro"
	@echo "make bench-memory   - peak memory of every stage on 70,000 digits"
	@echo "make bench-oneclass - the one-class benchmark, both protocols, one DVC experiment"
	@echo "                      per digit (reports/oneclass.md; docs/oneclass.md)"
	@echo "                      (benchmarks write their figures to benchmarks/results/)"
	@echo "make ui       - the MLflow UI over the project's store on http://127.0.0.1:$(UI_PORT)"
	@echo "make stack    - the team stack on 127.0.0.1: PostgreSQL, S3 (SeaweedFS), mlflow server;"
	@echo "                the S3 bucket becomes the DVC remote; then source .stack/env (docs/team.md)"
	@echo "make stack-down - stop the team stack (its data stays in .stack/ for the next make stack)"

# Reinstall only when the package's metadata changes; pip's notes about missing
# local index folders are noise, so they are filtered (pip's exit status still counts).
$(INSTALLED): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@# A venv's own pip (23.2 with Python 3.11) backtracks for minutes over dvc-s3's
	@# aiobotocore and boto3 pins; a current pip resolves them in seconds.
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --editable '.[dev,team]' 2>&1 \
	  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@touch $@

install: $(INSTALLED)

repro: $(INSTALLED)
	dvc repro

# The fast set on two workers: 57 s in pytest, 58 s through make (2 cores, 2026-12-07).
test: $(INSTALLED)
	python -m pytest -m "not slow" -n 2

# Every test. Only the tests marked project_pipeline read the project's own reproduced
# pipeline (conftest's default_pipeline); every other one, fast or slow, works in copies
# and needs none. So they run on two workers beside `dvc repro`, filling the core its
# one-process stages and its odd seed leave idle, and the project_pipeline tests once it
# has finished (`dvc repro` does nothing when the pipeline is up to date).
test-all: $(INSTALLED)
	@mkdir -p .dvc/tmp; tests=0; repro=0; \
	dvc repro > .dvc/tmp/repro.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2> /dev/null || true' EXIT; \
	python -m pytest -n 2 --dist loadgroup -m "not project_pipeline" --durations=15 \
	  || tests=$$?; \
	wait $$pid || repro=$$?; \
	cat .dvc/tmp/repro.log; \
	if [ $$repro -ne 0 ]; then echo "make test-all: dvc repro failed"; exit $$repro; fi; \
	exit $$tests
	python -m pytest -m project_pipeline

lint: $(INSTALLED)
	ruff check src stages stack tests benchmarks
	ruff format --check src stages stack tests benchmarks
	lint-imports --no-cache
	zizmor --offline --quiet .github/workflows

check: $(INSTALLED)
	aelab check $(CHECK_ARGS)

bench: $(INSTALLED)
	python benchmarks/train_speed.py

bench-seeds: $(INSTALLED)
	python benchmarks/seeds_speed.py

bench-tracking: $(INSTALLED)
	python benchmarks/tracking_cost.py

bench-memory: $(INSTALLED)
	python benchmarks/stage_memory.py

# One seed per experiment (ONECLASS_SET): 3 seeds of every variant on twenty experiments
# do not fit in an hour on 2 cores (docs/oneclass.md).
ONECLASS_SET ?= -S train.seeds=1
bench-oneclass: $(INSTALLED)
	aelab benchmark oneclass $(ONECLASS_SET)
	aelab benchmark oneclass --protocol one-vs-rest-anomalous $(ONECLASS_SET)

# The store the log step fills by default (see aelab.tracking); artifacts live where each
# experiment says (mlartifacts/), so the UI serves them from there.
# MLflow's UI opens in its GenAI view unless the address asks for the model-training one.
ui: $(INSTALLED)
	@echo "open http://127.0.0.1:$(UI_PORT)/#/experiments?workflowType=machine_learning"
	MLFLOW_DISABLE_TELEMETRY=true mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
	  --host 127.0.0.1 --port $(UI_PORT)

# The team stack (stack/, docs/team.md): its state, logs and data in .stack/; ports and
# folder from AELAB_STACK_* (python -m stack --help).
stack: $(INSTALLED)
	python -m stack up

stack-down: $(INSTALLED)
	python -m stack down
