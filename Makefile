# synsetforge: `make demo` builds and shows the demo project; `make test` runs every check CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
RUNTIME := $(VENV)/.runtime-$(HASH)
TESTING := $(VENV)/.testing-$(HASH)
LINTED := src tests bench scripts

.PHONY: demo test system-packages lint typecheck unit bench-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when pyproject.toml changes. The demo needs only the package; tests also need the test extra
# (torch pinned to the 2.13.0 CPU wheel, playwright, torchmetrics, webdataset, pycocotools, imagehash, ray).
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	rm -f $(VENV)/.runtime-*
	touch $@

$(TESTING): $(RUNTIME)
	$(BIN)/python -m pip install -q -e ".[test]"
	rm -f $(VENV)/.testing-*
	touch $@

demo: $(RUNTIME)
	$(BIN)/synsetforge demo demo-project

lint: $(TESTING)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(TESTING)
	$(BIN)/mypy

# Debian packages the tests need (Chromium, wordnet-base, postgresql-client), installed only when missing.
system-packages:
	bash scripts/system-packages.sh

unit: $(TESTING) system-packages
	$(BIN)/pytest -q

test: system-packages lint typecheck unit

# Peers used only by benchmarks (crowd-kit, scikit-image) live in their own venv: they pull large or
# conflicting dependencies that must not reach the package's runtime. img2dataset has its own too
# (see README, Benchmarks).
bench-venv:
	$(PYTHON) -m venv .bench-venv
	.bench-venv/bin/python -m pip install -q --upgrade pip
	.bench-venv/bin/python -m pip install -q -r bench/requirements-peers.txt
	.bench-venv/bin/python -m pip install -q --no-deps -e .

clean:
	rm -rf $(VENV) .bench-venv demo-project .pytest_cache .mypy_cache .ruff_cache
