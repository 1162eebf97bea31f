# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# torch is installed first, pinned, so a CPU machine gets the CPU build instead of gigabytes
# of CUDA wheels; override it for a GPU machine, e.g. make demo TORCH_SPEC=torch==2.6.0
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# Test processes (pytest-xdist): one per core; each computes on one thread (tests/conftest.py).
TEST_WORKERS ?= auto
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP)

# The default comparison: static (one mask per sequence) vs dynamic, seeds 0-2, then the same
# runs seed by seed, to show whether the gap holds at every seed and not just on average.
demo: install
	$(BIN)/dmx sweep experiment=static_vs_dynamic --per-seed

test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --durations=15

# Everything but the tests marked slow (those that train or start processes for more than a
# few seconds): under a minute on 2 cores.
test-fast: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) -m "not slow"

# ruff, then the import contracts in pyproject.toml ([tool.importlinter]): the layers, no
# import circle, masking and the model plain torch, the report without torch.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) outputs .pytest_cache
