# Quick start: `make demo` runs the embedded demo, `make test` runs the whole test suite.
# Both create ./.venv and install the project into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/remarket demo

test: $(BIN)/.installed
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests
	$(BIN)/mypy --strict src
	$(BIN)/lint-imports

clean:
	rm -rf outbox remarket-demo.db* remarket-report.html .pytest_cache .mypy_cache .ruff_cache
