# AICP: `make run` serves the platform on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The suite runs on PostgreSQL; pytest-django creates and drops its own test_<name> database.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/aicp

.PHONY: install run worker beat test lint format bench-api bench-serving bench-reconcile bench-ingest schema

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,serving,engine]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# The Celery worker and the periodic scheduler; the broker is CELERY_BROKER_URL (default: var/celery/, no server).
worker: $(STAMP)
	$(BIN)/celery -A controlplane worker --loglevel=INFO --concurrency=2

beat: $(STAMP)
	mkdir -p var
	$(BIN)/celery -A controlplane beat --loglevel=INFO --schedule var/celerybeat-schedule

test: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: $(STAMP)
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

bench-api: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m benchmarks.api

bench-reconcile: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m benchmarks.reconcile

bench-ingest: $(STAMP)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/python -m benchmarks.ingest

bench-serving: $(STAMP)
	$(BIN)/python -m benchmarks.serving
