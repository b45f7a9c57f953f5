# The verbs people type. Each one sets up what it needs on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint format clean image-test image-lock bench bench-quick

$(VENV)/.runtime: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "marketplace-entrypoint needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@

## demo: the whole bootstrap against the embedded Metering emulator
demo: $(VENV)/.runtime
	$(BIN)/marketplace-entrypoint demo

## lint: ruff (lint and format) and mypy --strict
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then every test suite (what CI runs)
test: lint
	$(BIN)/pytest

## test-fast: lint, then the suites not marked slow
test-fast: lint
	$(BIN)/pytest -m "not slow"

## image-test: build docker/Dockerfile and the examples with buildah and run them (root)
image-test: $(VENV)/.dev
	$(BIN)/pytest -m image tests/image

# Pins docker/*.lock: every PyPI release up to LOCK_DATE, for every platform and Python >= 3.11,
# with hashes. The same LOCK_DATE gives the same files; move it forward to take updates.
LOCK_DATE ?= 2026-11-20T00:00:00Z
LOCK := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--exclude-newer $(LOCK_DATE) --index-url https://pypi.org/simple \
	--custom-compile-command "make image-lock"

## image-lock: regenerate docker/requirements.lock and docker/build-requirements.lock
image-lock: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet --group lock
	$(LOCK) pyproject.toml -o docker/requirements.lock
	$(LOCK) docker/build-requirements.in -o docker/build-requirements.lock

## bench: every benchmark (issues 7 and 12), as ratios against baselines run alongside (bench/RESULTS.md)
bench: $(VENV)/.dev
	$(BIN)/python -m bench.run

bench-quick: $(VENV)/.dev
	$(BIN)/python -m bench.run --quick

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
