# Thin wrapper: the logic lives in deploy/bootstrap.sh (before the venv exists) and in
# `orderstream stack ...` (orderstream/stack/). See README.md.
VENV := .venv
OS := $(VENV)/bin/orderstream
PYTEST_ARGS ?=

.PHONY: up down clean status env venv install install-test test test-unit test-integration test-e2e lint ci

# the venv alone (no PostgreSQL, Redis, JDK or Maven): what the unit tier and lint need
venv:
	@BOOTSTRAP_VENV_ONLY=1 deploy/bootstrap.sh

install:
	@deploy/bootstrap.sh

# what the tests need besides (Chromium for the storefront page's browser test)
install-test:
	@BOOTSTRAP_FOR_TESTS=1 deploy/bootstrap.sh

up: install
	@$(OS) stack up

down:
	@if [ -x $(OS) ]; then $(OS) stack down; fi

clean:
	@if [ -x $(OS) ]; then $(OS) stack clean; else \
	  if [ -L .local/pg ]; then rm -rf "$$(readlink .local/pg)"; fi; rm -rf .local; fi

status:
	@$(OS) stack status

env:
	@$(OS) stack env

# Every tier; the `stack` fixture (tests/conftest.py) brings the stack up when it is not running.
test: install-test
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

# Needs no service: a unit test that asks for the `stack` fixture fails (tests/conftest.py).
test-unit: venv
	@$(VENV)/bin/pytest -m unit $(PYTEST_ARGS)

test-integration: install
	@$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

test-e2e: install-test
	@$(VENV)/bin/pytest -m e2e $(PYTEST_ARGS)

# ruff (lint + format), the import layers (.importlinter), mypy over the packages, and
# mypy --strict over the contract and the pure decision modules (.pre-commit-config.yaml runs
# the same); CI runs it before the stack
MYPY_PACKAGES := ingress orderstream streams sinks schemas bench
MYPY_STRICT := schemas streams/decisions.py streams/settlement.py sinks/projection.py sinks/arbitration.py
lint: venv
	@$(VENV)/bin/lint-imports --no-cache .importlinter
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy $(MYPY_PACKAGES)
	@$(VENV)/bin/mypy --strict $(MYPY_STRICT)

ci:
	@.ci/run

.PHONY: bench bench-idle loadtest
bench:
	@$(OS) bench $(BENCH_ARGS)

# Locust buyers against the running stack (`make up` first): 1000 by default;
# LOADTEST_ARGS="--users 200 --duration 30" for others. Reports in bench/results/loadtest/.
loadtest:
	@$(VENV)/bin/python -m bench.loadtest $(LOADTEST_ARGS)

# What the running stack costs with no traffic, per program (`make up` first).
bench-idle:
	@$(VENV)/bin/python -m bench.idle $(BENCH_ARGS)

# Against the running stack (`make up` first): a short flash sale, then the invariants.
.PHONY: demo reconcile readmodel-rebuild
demo:
	@$(OS) demo $(DEMO_ARGS)

reconcile:
	@$(OS) reconcile

# Write the Redis read model again from PostgreSQL and the stock table (safe while it runs)
readmodel-rebuild:
	@$(OS) readmodel rebuild $(REBUILD_ARGS)

# The long chaos run against the running stack (`make up` first): minutes of retrying order
# load while every program is killed and paused; docs/operations/chaos.md. The short form
# is tests/chaos/test_chaos.py (part of `make test`).
.PHONY: chaos
chaos:
	@$(VENV)/bin/python -m tests.chaos --long $(CHAOS_ARGS)
