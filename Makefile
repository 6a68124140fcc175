# vidflow: every target installs what it needs itself (see README).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up down status test check unit lint types layers bench clean promtool

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## up: install and start the whole pipeline (services, flows, watcher, portal) and print its URLs
up: $(STAMP)
	$(BIN)/vidflow up

## down: stop everything `make up` started (data under .vidflow/ is kept)
down: $(STAMP)
	$(BIN)/vidflow down

status: $(STAMP)
	$(BIN)/vidflow stack status

## test: lint, types, then every test against real Kafka, MinIO, PostgreSQL and FFmpeg
# (five workers on two cores: most tests wait on Kafka, timers and FFmpeg children, and a fifth
# worker fills that wait (warm: 5 m 39 s, against 6 m 25 s with four); each test has its own
# topics and bucket, each worker its own database). loadgroup hands out single
# tests (a file's tests are spread, so no long file decides the wall time), keeping together
# only the tests marked xdist_group (they share a module fixture); tests/ordering.py starts the
# slowest first, from the times the last run left in .pytest_cache.
test: check browser promtool
	$(BIN)/pytest -n 5 --dist loadgroup

unit: $(STAMP) promtool
	$(BIN)/pytest tests/unit

## check: lint, format, types and the layers (import-linter contract in pyproject.toml)
check: lint types layers

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# Debian's Chromium for the Playwright browser test (Playwright's own download cannot work here).
browser: $(STAMP)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "install Debian's chromium: sudo apt-get install chromium"; exit 1; fi; }

# Debian's prometheus brings promtool, which tests/unit/test_alert_rules.py runs on deploy/prometheus.
promtool:
	@test -x /usr/bin/promtool || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus; \
	  else echo "install Debian's prometheus (promtool): sudo apt-get install prometheus"; exit 1; fi; }

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
