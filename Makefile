# Two commands set everything up on a fresh machine:
#   make run   - create .venv, install, start the platform on http://127.0.0.1:8700
#   make test  - create .venv, install, lint and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint format bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "opsloop needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,postgres]'
	@# compile the metric detector's loop once (numba's cache): not on the first NAB run
	$(BIN)/python -c 'from opsloop.detect.metrics import steady; steady.warm()'
	@touch $@

install: $(STAMP)

run: install
	$(BIN)/opsloop up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]'
	@echo "Peers installed (drain3). Each benchmark is its own script in benchmarks/;"
	@echo "BENCHMARKS.md gives the command of every figure (most need ../shared/data)."

clean:
	rm -rf $(VENV) dist build .pytest_cache .ruff_cache
