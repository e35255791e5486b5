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

$(STAMP): pyproject.toml layers/common/requirements.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found (pyenv 3.13.0 or python3.13 on PATH)"; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

$(TOOLS_STAMP):
	$(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q checkov cfn-lint-serverless
	touch $(TOOLS_STAMP)

.PHONY: help install dev test test-fast lint format typecheck validate build openapi bench check clean lint-template

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv (Python 3.13) and install everything

dev: $(STAMP) ## run the API on localhost:$(PORT) (embedded PostgreSQL, local S3, demo data)
	$(BIN)/activity serve --port $(PORT) --scale $(SCALE)

test: $(STAMP) ## run the whole test suite (slow tests included)
	$(BIN)/pytest

test-fast: $(STAMP) ## the suite without tests marked slow
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
	rm -rf .aws-sam .local build .venv-tools
