# Two commands: `make run` (the whole backend on this machine) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Every lib and service with a pyproject.toml; services added later are picked up.
PYPROJECTS := $(sort $(wildcard libs/*/pyproject.toml services/*/pyproject.toml))
PKG_DIRS   := $(patsubst %/pyproject.toml,%,$(PYPROJECTS))
DEV_DEPS   := pytest pytest-asyncio pytest-timeout pytest-xdist httpx websockets ruff mypy py-spy playwright==1.65.3 schemathesis==4.32.5
STAMP      := $(VENV)/.install-stamp
# The stamp also remembers the package list, so a removed/added package re-installs.
PKG_LIST   := $(VENV)/.install-packages

.PHONY: help install run test lint format bench clean clean-data compose-env validate FORCE

help:
	@echo "make install  - create $(VENV) and install every lib/service editable + dev tools"
	@echo "make run      - start NATS, auth, messages, presence, gateway (http://127.0.0.1:$${GATEWAY_PORT:-8080})"
	@echo "make test     - install, start a throwaway PostgreSQL, run pytest (unit + integration)"
	@echo "make lint     - ruff (check + format --check) + mypy; make format fixes the layout"
	@echo "make bench    - load benchmark (bench/run.py; BENCH_ARGS=\"--backend postgres --rate 500\")"
	@echo "make validate - deploy/validate.sh: Dockerfile, compose, k8s overlays, alert rules, dashboards (offline)"
	@echo "make compose-env - write .env with every secret docker-compose needs (random; none has a default)"
	@echo "make clean    - caches and the install stamp (make clean-data removes ./data)"

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(PKG_LIST): FORCE | $(BIN)/python
	@echo "$(PKG_DIRS)" | cmp -s - $@ || echo "$(PKG_DIRS)" > $@

$(STAMP): $(PYPROJECTS) $(PKG_LIST) pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(addprefix -e ,$(PKG_DIRS)) $(DEV_DEPS)
	@touch $@

run: install
	$(BIN)/chat-run

test:
	scripts/test.sh

# Every tool always runs; the target fails if any found something. `make format` fixes the layout.
lint: install
	@rc=0; \
	$(BIN)/ruff check libs services tests bench || rc=1; \
	$(BIN)/ruff format --check libs services tests bench || rc=1; \
	$(BIN)/mypy $(filter-out libs/client-ts/src,$(wildcard libs/*/src services/*/src)) || rc=1; \
	exit $$rc

format: install
	$(BIN)/ruff format libs services tests bench
	$(BIN)/ruff check --fix libs services tests bench

BENCH_ARGS ?= --backend sqlite --clients 4 --rate 500 --duration 15 --repeat 3
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .tmp $(STAMP) $(PKG_LIST)
	find libs services tests -name __pycache__ -type d -prune -exec rm -rf {} +

clean-data:
	rm -rf data

compose-env:
	scripts/compose-env.sh

validate: install
	deploy/validate.sh
