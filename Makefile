# The two front-door commands: `make demo` and `make test`. Both create the virtual environment
# and install the package on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The same, with the Elasticsearch 8 client: Elastic's clients speak their own major version.
ES8_VENV  := .venv-es8
ES8_STAMP := $(ES8_VENV)/.installed-stamp
# The native encoder (Rust, built by maturin: see native/): its sources rebuild it.
NATIVE := native/Cargo.toml native/Cargo.lock native/pyproject.toml native/README.md \
          native/auditwire_native.pyi native/src/lib.rs
# Installs it into the environment whose bin/ is $(1), where cargo is found; without cargo,
# auditwire runs its pure-Python path (the demo does; the suite's native tests fail).
native = @if command -v cargo >/dev/null; then \
	  $(1)/python -m pip install --quiet --force-reinstall --no-deps ./native; \
	else \
	  echo "no cargo: the native encoder is not built; auditwire runs pure Python" >&2; \
	fi
# The browser tests' accessibility rules: axe-core, from npm.
AXE_VERSION := 4.11.0
AXE         := build/node/node_modules/axe-core/axe.min.js

.PHONY: demo test test-es8 lint typecheck docs unit engine bench browser clean

$(STAMP): pyproject.toml LICENSE $(NATIVE)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(call native,$(BIN))
	touch $(STAMP)

$(ES8_STAMP): pyproject.toml LICENSE $(NATIVE)
	$(PYTHON) -m venv $(ES8_VENV)
	$(ES8_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ES8_VENV)/bin/python -m pip install --quiet -e '.[dev]' 'elasticsearch[async]>=8.19,<9'
	$(call native,$(ES8_VENV)/bin)
	touch $(ES8_STAMP)

## make demo: an audited app lives a morning over HTTP on the embedded store, then serves the
## viewer (its address printed on a line of its own; Ctrl-C stops it)
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## make test: lint (style and the import contracts), type-check, build the documentation site
## strictly, the whole suite (every example of the README and the site included) against the
## real Elasticsearch 9 and OpenSearch it starts, then the Elasticsearch tests again with the
## 8.x client against Elasticsearch 8; the viewer's tests drive a real Chromium
test: lint typecheck docs browser
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-es8

## make test-es8: the tests of the session's Elasticsearch, with the 8.x client and server
test-es8: $(ES8_STAMP)
	$(ES8_VENV)/bin/python -m pytest -m elasticsearch

lint: $(STAMP)
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/ruff format --check src tests examples $(wildcard bench)
	$(BIN)/lint-imports
	@if command -v cargo >/dev/null; then \
	  cd native && cargo fmt --check && cargo clippy --quiet --release -- -D warnings; \
	fi

typecheck: $(STAMP)
	$(BIN)/mypy

## make browser: what the viewer's browser tests drive — Debian's Chromium (installed when
## missing, as root; the tests fail without it) and axe-core from npm
browser: $(AXE)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "the browser tests need Debian's chromium package: apt-get install chromium" >&2; \
	    exit 1; \
	  fi; }

$(AXE):
	npm install --prefix build/node --no-audit --no-fund --no-save axe-core@$(AXE_VERSION)

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
	rm -rf $(VENV) $(ES8_VENV) build dist .pytest_cache .mypy_cache .ruff_cache native/target
