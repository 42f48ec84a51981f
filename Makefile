# synsetforge: `make demo` builds and shows the demo project; `make test` runs every check CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
LINTED := src tests bench scripts

.PHONY: demo test lint typecheck unit bench-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when pyproject.toml changes. torch is pinned to the CPU wheel (2.13.0) in the test extra.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/synsetforge demo demo-project

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# Peers used only by benchmarks (crowd-kit, img2dataset) live in their own venv: they pull large or
# conflicting dependencies that must not reach the package's runtime.
bench-venv:
	$(PYTHON) -m venv .bench-venv
	.bench-venv/bin/python -m pip install -q --upgrade pip
	.bench-venv/bin/python -m pip install -q -r bench/requirements-peers.txt
	.bench-venv/bin/python -m pip install -q --no-deps -e .

clean:
	rm -rf $(VENV) .bench-venv demo-project .pytest_cache .mypy_cache .ruff_cache
