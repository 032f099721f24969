# Deflect front door. `make run` and `make test` set up everything they need from this repo's own files.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PORT ?= 3000
export AWS_DEFAULT_REGION ?= us-east-1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint unit integration e2e bench demo validate clean fmt

$(STAMP): pyproject.toml layers/core/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --silent
	touch $(NODE_STAMP)

## run: the whole system locally on the embedded default (moto, real handlers on http://127.0.0.1:$(PORT))
run: $(STAMP)
	$(BIN)/python -m infra.local.stack --port $(PORT)

## test: lint, template checks, state machine validation and every test level
test: $(STAMP) $(NODE_STAMP) lint validate
	$(BIN)/pytest -q -n 2 tests/unit tests/integration
	$(BIN)/pytest -q tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m infra.checks.no_unsafe_calls

validate: $(STAMP) $(NODE_STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m infra.checks.asl

unit: $(STAMP)
	$(BIN)/pytest tests/unit
integration: $(STAMP)
	$(BIN)/pytest tests/integration
e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

## bench: speed and size numbers (never run as tests)
bench: $(STAMP)
	$(BIN)/python -m bench

## demo: a scripted walk through the running local stack
demo: $(STAMP)
	$(BIN)/python -m infra.local.demo --base-url http://127.0.0.1:$(PORT)

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .aws-sam .pytest_cache .deflect-data
