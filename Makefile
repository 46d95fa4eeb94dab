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

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/bootstrap.py

## Remove the warehouse and the instance's run history (asks nothing: scripts call it).
clean-data:
	rm -rf data/crypto.duckdb data/crypto.duckdb.wal data/exports storage history schedules logs
