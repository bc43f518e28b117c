# The two front-door commands: `make demo` and `make test`. Both create the virtual environment
# and install the package on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The same, with the Elasticsearch 8 client: Elastic's clients speak their own major version.
ES8_VENV  := .venv-es8
ES8_STAMP := $(ES8_VENV)/.installed-stamp

.PHONY: demo test test-es8 lint typecheck docs unit engine bench clean

$(STAMP): pyproject.toml LICENSE
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(ES8_STAMP): pyproject.toml LICENSE
	$(PYTHON) -m venv $(ES8_VENV)
	$(ES8_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ES8_VENV)/bin/python -m pip install --quiet -e '.[dev]' 'elasticsearch[async]>=8.19,<9'
	touch $(ES8_STAMP)

## make demo: record a realistic mix of events in the embedded store and query them back
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## make test: lint (style and the import contracts), type-check, build the documentation site
## strictly, the whole suite (every example of the README and the site included) against the
## real Elasticsearch 9 and OpenSearch it starts, then the Elasticsearch tests again with the
## 8.x client against Elasticsearch 8
test: lint typecheck docs
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-es8

## make test-es8: the tests of the session's Elasticsearch, with the 8.x client and server
test-es8: $(ES8_STAMP)
	$(ES8_VENV)/bin/python -m pytest -m elasticsearch

lint: $(STAMP)
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/ruff format --check src tests examples $(wildcard bench)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## make docs: build the documentation site (docs/, mkdocs.yml) into build/site, warnings as errors
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## make unit: the tests that need no Elasticsearch
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

## make engine: start the test Elasticsearch by hand (Ctrl-C stops it)
engine: $(STAMP)
	$(BIN)/python -m tests.support.engine

clean:
	rm -rf $(VENV) $(ES8_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
