# The two front-door commands: `make demo` and `make test`. Both create the virtual environment
# and install the package on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit engine bench clean

$(STAMP): pyproject.toml LICENSE
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: record a realistic mix of events in the embedded store and query them back
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## make test: lint (style and the import contracts), type-check, then the whole suite against a real Elasticsearch it starts
test: lint typecheck
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/ruff format --check src tests examples $(wildcard bench)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## make unit: the tests that need no Elasticsearch
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

## make engine: start the test Elasticsearch by hand (Ctrl-C stops it)
engine: $(STAMP)
	$(BIN)/python -m tests.support.engine

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
