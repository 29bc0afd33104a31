# Memestream: `make up` runs the whole platform locally, `make test` runs the tests
# against the real local stack. Both bootstrap the machine first (apt packages when
# missing, the .venv when pyproject.toml changed).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
MEMESTREAM := $(BIN)/memestream

.PHONY: help bootstrap up down status stack test test-unit lint format bench load load-all

help:  ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap:  ## Install missing apt packages and the virtualenv (skipped when up to date).
	@VENV=$(VENV) scripts/bootstrap.sh

up: bootstrap  ## Start the stack, migrate, create topics, run the API and a worker (Ctrl-C stops).
	$(MEMESTREAM) up

down:  ## Stop the API, the workers and the stack.
	@if [[ -x $(MEMESTREAM) ]]; then $(MEMESTREAM) down; fi

status:  ## Show what is running.
	$(MEMESTREAM) status

stack: bootstrap  ## Start only the stores (Kafka, schema registry, PostgreSQL, Redis, MinIO, NATS).
	$(MEMESTREAM) stack start

test: stack  ## Check schemas/ against the schema registry, then run the test suite.
	$(MEMESTREAM) schemas check
	$(BIN)/python -m pytest

test-unit: bootstrap  ## Run the tests that need no service (no stack started; tests/conftest.py marks them).
	$(BIN)/python -m pytest -m unit -n auto --dist worksteal

bench: stack  ## Run the benchmark scripts and regenerate BENCHMARKS.md.
	$(BIN)/python -m benchmarks.report

SCENARIO ?= burst
SCALE ?= 1
load: bootstrap  ## One load scenario at scale 1 on a private platform: reports/load/$(SCENARIO).{json,html}.
	$(BIN)/python -m memestream loadgen run --scenario $(SCENARIO) --scale $(SCALE)

load-all: bootstrap  ## generation, memory, burst and sustained in turn (about an hour and a quarter).
	$(BIN)/python -m memestream loadgen run --scenario generation --scenario memory --scenario burst --scenario sustained --scale $(SCALE)

lint: bootstrap  ## ruff check and ruff format --check.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: bootstrap  ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
