# AICP: `make run` serves the platform on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The suite runs on PostgreSQL; pytest-django creates and drops its own test_<name> database.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/aicp

.PHONY: install run demo-check worker beat test lint format bench-api bench-serving bench-reconcile bench-ingest schema fuzz-api screenshots

# helm-sdkpy is Helm's own engine for the chart tests (helm/aicp). It declares Python >= 3.12, but its Go
# library and the lint and install calls the tests make work on 3.11.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,serving,engine,production]'
	$(BIN)/pip install --quiet --ignore-requires-python 'helm-sdkpy==0.1.32'
	touch $(STAMP)

install: $(STAMP)

# Migrate, set up the demo platform (once), start web server, Celery worker and beat; Ctrl-C stops them all.
# AICP_PORT (default 8000); everything written goes to var/ (AICP_VAR_DIR). See docs/embedded.md.
run: $(STAMP)
	$(BIN)/python -m controlplane.embedded

# `make run` from a fresh var folder, unattended, up to the first streamed token of a demo task; then Ctrl-C.
demo-check: $(STAMP)
	$(BIN)/python -m benchmarks.demo_check

# The Celery worker and the periodic scheduler; the broker is CELERY_BROKER_URL (default: var/celery/, no server).
worker: $(STAMP)
	$(BIN)/celery -A controlplane worker --loglevel=INFO --concurrency=2

beat: $(STAMP)
	mkdir -p var
	$(BIN)/celery -A controlplane beat --loglevel=INFO --schedule var/celerybeat-schedule

# The console's browser tests drive Debian's Chromium (never a browser downloaded by a tool).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

test: $(STAMP) $(CHROMIUM)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/pytest $(PYTEST_ARGS)

# The console walks again, saving their screenshots into docs/screenshots/ (which the README links).
screenshots: $(STAMP) $(CHROMIUM)
	AICP_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
		$(BIN)/pytest tests/console/test_tenant_walk.py tests/console/test_admin_walk.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: $(STAMP)
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

# schemathesis over every operation of the OpenAPI schema, as a tenant admin and a platform admin, against gunicorn
# on a dedicated PostgreSQL database; fails on a 5xx or an answer the schema does not describe (docs/api.md).
fuzz-api: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m tests.fuzz.run $(FUZZ_ARGS)

bench-api: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m benchmarks.api

bench-reconcile: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m benchmarks.reconcile

bench-ingest: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m benchmarks.ingest

bench-serving: $(STAMP)
	$(BIN)/python -m benchmarks.serving
