# Everything a fresh machine needs: `make demo` runs the main job end to end, `make test` the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
# The local stack's database password; set MUNGMO_DB_PASSWORD yourself anywhere else.
export MUNGMO_DB_PASSWORD ?= mungmo-local-dev

.PHONY: demo test lint setup up down status dev daemon

demo: setup up
	$(BIN)/python -m mungmo_pipelines.demo

test: setup up lint
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

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

dev: setup up
	$(BIN)/dagster dev -w workspace.yaml

daemon: setup up
	$(BIN)/dagster-daemon run -w workspace.yaml
