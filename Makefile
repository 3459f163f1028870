# The two commands of the README: `make run` (the demo) and `make test` (everything CI checks).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint typecheck unit integration bench clean

setup:
	./scripts/bootstrap.sh

run: setup
	$(BIN)/hookstream demo

lint: setup
	$(BIN)/ruff check services tests bench scripts
	$(BIN)/ruff format --check services tests bench scripts

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
