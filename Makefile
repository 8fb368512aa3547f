# churnwatch — every command sets up what it needs on a fresh machine.
# `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: help venv demo up down status lint format test test-unit test-integration lock schemas clean \
	deploy-tools deploy-check deploy-tools-lock bench bench-quick chaos eval-outside browser

help: ## this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(INSTALLED): requirements-dev.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(INSTALLED) ## create .venv with the locked dependencies

demo: $(INSTALLED) ## play a simulated portfolio through the whole pipeline → reports/demo.html (DEMO_KEEP=0: stop after)
	$(PY) -m churnwatch.demo $(if $(filter 0 false no,$(DEMO_KEEP)),--no-keep) $(DEMO_ARGS)

up: $(INSTALLED) ## start Kafka, PostgreSQL, the Slack/SMTP sinks and the services (or use KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL)
	$(PY) -m devstack up

down: $(INSTALLED) ## stop everything `make up` started
	$(PY) -m devstack down

status: $(INSTALLED) ## what runs
	@$(PY) -m devstack status || true

lint: $(INSTALLED) ## ruff and mypy (strict for shared/, services/, devstack/, churnwatch/)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services devstack churnwatch bench chaos deploy tests

format: $(INSTALLED) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint deploy-tools browser ## lint, then every test; starts (and stops) its own Kafka and PostgreSQL
	$(PY) -m pytest

test-unit: $(INSTALLED) ## unit tests only: no infrastructure
	$(PY) -m pytest -m "not integration"

test-integration: $(INSTALLED) ## integration tests only
	$(PY) -m pytest -m integration

browser: $(INSTALLED) ## Chromium + chromium-driver for the browser tests (Debian's packages, installed when missing)
	$(PY) -m devstack.browser

deploy-tools: ## the manifest checks' tools (kustomize, kubernetes-validate, checkov, hadolint), cached
	$(PYTHON) deploy/tools/tools.py install

deploy-check: $(INSTALLED) deploy-tools ## render, validate and scan deploy/k8s and the Dockerfile (tests/deploy)
	$(PY) -m pytest tests/deploy

deploy-tools-lock: $(INSTALLED) ## re-resolve deploy/tools/requirements.in into its hashed lock
	@test -x $(VENV)/bin/uv || $(PY) -m pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile -q deploy/tools/requirements.in --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o deploy/tools/requirements.lock

lock: ## re-resolve pyproject.toml into requirements.lock (services) / requirements-dev.lock (+ dev, fit extras)
	@test -x $(VENV)/bin/uv || $(PY) -m pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile -q pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev --extra fit -c requirements.lock --generate-hashes --python-version 3.11 -o requirements-dev.lock

schemas: $(INSTALLED) ## re-export the event contract's JSON Schema
	$(PY) -m shared.events schema > shared/schemas/events.v1.json

bench: $(INSTALLED) ## S1–S7 against bare baselines on own Kafka/PostgreSQL (30–60 min) → docs/benchmarks.md
	$(PY) -m bench

bench-quick: $(INSTALLED) ## a reduced benchmark run (under 3 minutes) → reports/benchmarks-quick.md
	$(PY) -m bench --quick --doc reports/benchmarks-quick.md

chaos: $(INSTALLED) ## six faults under load, then hostile inputs, on its own Kafka/PostgreSQL/services (~5 min) → docs/reliability.md
	$(PY) -m chaos

eval-outside: $(INSTALLED) ## judge the signal on outside data (fightchurn crm5, CDNOW): generate, convert, import, fit, backtest → docs/signal-quality.md (cached stages)
	$(PY) -m churnwatch.outside $(EVAL_ARGS)

clean: down ## stop everything and delete local state (.local), keeping the venv and caches
	rm -rf .local
