# The two commands of the README: `make run` (the demo) and `make test` (everything CI checks).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test run test lint typecheck unit integration bench chaos clean

# `run` needs Python packages only; `test` also the Go tools of the deploy checks.
setup:
	./scripts/bootstrap.sh

setup-test:
	./scripts/bootstrap.sh --test-tools

run: setup
	$(BIN)/hookstream demo

lint: setup-test
	$(BIN)/ruff check services tests bench scripts
	$(BIN)/ruff format --check services tests bench scripts

typecheck: setup-test
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/run_all.py

# Kill -9 brokers and services of a local three-broker cluster under load; not part of `test`.
# CHAOS_ARGS, e.g. `make chaos CHAOS_ARGS="--minutes 3"`.
chaos: setup
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
