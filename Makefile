# Everything a fresh machine needs: `make demo` runs the main job end to end, `make test` the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
# The local stack's database password; set MUNGMO_DB_PASSWORD yourself anywhere else.
export MUNGMO_DB_PASSWORD ?= mungmo-local-dev
# The UI's port (`make dev DAGSTER_PORT=3101`); `make dev VERBOSE=1` keeps the daemon's per-tick lines.
DAGSTER_PORT ?= 3000

.PHONY: demo test test-fast lint check docs setup up down status dev daemon connect-api

demo: setup up
	$(BIN)/python -m mungmo_pipelines.demo

# The whole suite against the local stack (what CI runs).
test: setup up lint
	$(BIN)/pytest

# The tests that need neither MariaDB nor Kafka, in seconds.
test-fast: setup
	$(BIN)/pytest -m "not stack" -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m mungmo_pipelines.core.docs --check
	shellcheck scripts/stack

# Every connector file must validate: a bad one fails here (it only drops out of the UI otherwise).
check: setup
	MUNGMO_STRICT_CONNECTORS=1 $(BIN)/dagster definitions validate -m mungmo_pipelines

# Rewrite the generated tables in docs/ from the code.
docs: setup
	$(BIN)/python -m mungmo_pipelines.core.docs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

up:
	scripts/stack up

down:
	scripts/stack down

status:
	scripts/stack status

# The UI and a daemon (schedules, sensors, the run queue): `dagster dev`, quieter (mungmo_pipelines/dev.py).
dev: setup up
	$(BIN)/python -m mungmo_pipelines.dev dev --port $(DAGSTER_PORT) $(if $(VERBOSE),--verbose)

# A daemon alone, for a UI running elsewhere; refuses to start beside `make dev`, which runs one.
daemon: setup up
	$(BIN)/python -m mungmo_pipelines.dev daemon $(if $(VERBOSE),--verbose)

# Kafka Connect's REST API on MUNGMO_CONNECT_API_HOST:PORT (127.0.0.1:8083); see docs/operations.md.
connect-api: setup
	$(BIN)/mungmo-connect serve
