# `make serve` and `make test` are the two commands a fresh machine needs (README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TS_DIR := tests/e2e/ts
TS_STAMP := $(TS_DIR)/node_modules/.installed

.PHONY: serve test lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The TypeScript `together-ai` SDK drives one end-to-end test (issue 3).
$(TS_STAMP): $(TS_DIR)/package.json
	cd $(TS_DIR) && npm install --no-audit --no-fund --loglevel=error
	touch $(TS_STAMP)

serve: $(STAMP)
	$(BIN)/tether serve

test: $(STAMP) $(TS_STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check tether tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m tether.bench.engine

# RSS and live samplers of a real server over 10,000 refused and 1,000 completed requests.
soak: $(STAMP)
	$(BIN)/python -m tether.bench.soak

clean:
	rm -rf $(VENV) $(TS_DIR)/node_modules
