# Relay. `make dev` runs the whole system; `make test` installs what tests need and passes them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint eval bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/relay dev

lint: $(STAMP)
	$(BIN)/ruff check relay routing adapters tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

eval: $(STAMP)
	$(BIN)/relay eval tests/data/triage_dev.jsonl --quiet

bench: $(STAMP)
	$(BIN)/python tests/bench/intake_bench.py

clean:
	rm -rf $(VENV) .relay .pytest_cache .mypy_cache .ruff_cache
