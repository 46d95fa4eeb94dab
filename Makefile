# crypto_assets: `make demo` (set up + offline demo), `make ui`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)

.PHONY: setup demo ui test lint bench clean-data

$(BIN)/crypto-assets: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/crypto-assets

## Offline demo: replay server on a free port + bootstrap of the bundled real 90 days x 6 symbols.
demo: setup
	$(BIN)/crypto-assets demo

## The Dagster UI on http://127.0.0.1:3000 against this instance (runs of `make demo` included).
ui: setup
	$(BIN)/dagster dev -w workspace.yaml

## Two workers, a test file each at a time (files share their fixtures): most of the suite waits on subprocesses.
test: setup
	$(BIN)/pytest -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/bootstrap.py

## Remove the warehouse and the instance's run history (asks nothing: scripts call it).
clean-data:
	rm -rf data/crypto.duckdb data/crypto.duckdb.wal data/exports storage history schedules logs

## PostgreSQL instance (deploy/postgres/dagster.yaml; docs/deploy.md). Any DAGSTER_PG_* set in the
## environment or on the command line wins; DAGSTER_PG_PASSWORD must exist, empty is fine for trust auth.
PG_TARGETS := pg-init demo-postgres ui-postgres
$(PG_TARGETS): export DAGSTER_HOME := $(CURDIR)/deploy/postgres
$(PG_TARGETS): export DAGSTER_PG_HOST ?= 127.0.0.1
$(PG_TARGETS): export DAGSTER_PG_PORT ?= 5432
$(PG_TARGETS): export DAGSTER_PG_USER ?= postgres
$(PG_TARGETS): export DAGSTER_PG_PASSWORD ?=
$(PG_TARGETS): export DAGSTER_PG_DB ?= dagster
.PHONY: $(PG_TARGETS)

## Create the PostgreSQL database and the instance's tables if missing (prints no password).
pg-init: setup
	$(BIN)/python deploy/postgres/create_database.py

## The offline demo, recorded in the PostgreSQL instance.
demo-postgres: pg-init
	$(BIN)/crypto-assets demo

## dagster dev (webserver + daemon) on http://127.0.0.1:3000 against the PostgreSQL instance.
ui-postgres: pg-init
	$(BIN)/dagster dev -w workspace.yaml
