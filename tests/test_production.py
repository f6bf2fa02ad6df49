"""Production settings (issue 7): ``check --deploy``, the probes, ``/metrics``, JSON logs, the HTTPS redirect and
its exemptions, static files through WhiteNoise, and gunicorn with ``controlplane/gunicorn_conf.py``.

Whatever depends on how settings are read from the environment runs in a fresh process with
``production_environment()``: the suite itself imports the settings once, with the embedded defaults.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from prometheus_client.parser import text_string_to_metric_families

from controlplane import health
from controlplane.logging import JsonFormatter
from inference_jobs.choices import TaskStatus
from tenancy.models import Tenant
from tests import factories
from tests.conftest import make_deployable
from tests.helpers import database_url, process_environment, run_manage

ROOT = Path(__file__).resolve().parent.parent
INGEST_PATHS = ("/api/v1/ingest/metrics/", "/api/v1/ingest/reflow/")


def production_environment(**overrides: str) -> dict[str, str]:
    """What a production web pod is given (the Helm chart's ConfigMap and Secret), ``overrides`` on top."""
    environment = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),  # 64 random characters
        "DJANGO_ALLOWED_HOSTS": "aicp.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://aicp.example.com",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "AICP_ORCHESTRATOR": "kubernetes",
        "AICP_LOG_FORMAT": "json",
    }
    environment.update(overrides)
    return environment


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample_value(exposition: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition; ``None`` when no sample has these labels."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return sample.value
    return None


def sample_sum(exposition: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
    )


@pytest.fixture
def readiness_not_yet_seen():
    """Each test starts as a fresh process does: not knowing whether every migration is applied."""
    health.migrations_applied.seen = False
    yield
    health.migrations_applied.seen = False


# --- manage.py check --deploy ---------------------------------------------------------------------------------


def test_check_deploy_is_clean_in_production():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", environment=production_environment())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "?: (security" not in output
    assert "no issues" in output


def test_check_deploy_fails_with_debug_on():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", environment=production_environment(DJANGO_DEBUG="true")
    )
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


# --- /healthz and /readyz -------------------------------------------------------------------------------------


def test_healthz_answers_without_the_database(client):
    # No database access is allowed in this test: pytest-django would fail any query.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_readyz_answers_200_when_migrated(client, db, readiness_not_yet_seen):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


def test_readyz_answers_503_naming_an_unapplied_migration(client, db, readiness_not_yet_seen):
    app_label, name = sorted(MigrationLoader(connection).graph.leaf_nodes())[0]
    recorder = MigrationRecorder(connection)
    recorder.record_unapplied(app_label, name)  # inside the test's transaction: rolled back after it

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "migrations": f"1 unapplied: {app_label}.{name}"},
    }

    recorder.record_applied(app_label, name)
    assert client.get("/readyz").status_code == 200
    # Once seen applied, the answer is kept for the process's life: a ready pod does not read the migrations again.
    recorder.record_unapplied(app_label, name)
    assert client.get("/readyz").status_code == 200


def test_readyz_answers_503_naming_the_database_when_it_is_unreachable():
    """A fresh process whose database is a closed port: liveness holds, readiness fails and says why."""
    script = (
        "import json\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "for path in ('/healthz', '/readyz'):\n"
        "    response = client.get(path)\n"
        "    print(json.dumps({'path': path, 'status': response.status_code, 'body': response.json()}))\n"
    )
    closed_port = free_port()
    result = run_manage(
        "shell", "-c", script, environment={"DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port}/aicp"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answers = {line["path"]: line for line in map(json.loads, result.stdout.strip().splitlines()[-2:])}

    assert answers["/healthz"]["status"] == 200
    readyz = answers["/readyz"]
    assert readyz["status"] == 503
    assert readyz["body"]["status"] == "unavailable"
    assert readyz["body"]["checks"]["database"].startswith("unavailable: OperationalError")
    assert str(closed_port) in readyz["body"]["checks"]["database"]
    assert readyz["body"]["checks"]["migrations"] == "not checked: no database"


# --- /metrics -------------------------------------------------------------------------------------------------


def test_metrics_counts_requests_by_route_and_tasks_by_status(client, db):
    before = client.get("/metrics").content.decode()
    assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/page/").status_code == 404
    deployable = make_deployable()
    fields = {"tenant": deployable.tenant, "model": deployable.model, "compute_pool": deployable.pool}
    for status in (TaskStatus.RUNNING, TaskStatus.RUNNING, TaskStatus.STOPPED):
        factories.TaskFactory(**fields, gateway=deployable.gateway, status=status)

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    after = response.content.decode()

    def requests_counted(text: str, **labels: str) -> float:
        return sample_value(text, "aicp_http_requests_total", **labels) or 0

    assert requests_counted(after, method="GET", view="healthz", status="200") == (
        requests_counted(before, method="GET", view="healthz", status="200") + 1
    )
    assert requests_counted(after, method="GET", view="unmatched", status="404") == (
        requests_counted(before, method="GET", view="unmatched", status="404") + 1
    )
    assert not any("/no/such/page" in line for line in after.splitlines())  # never the raw path
    assert sample_value(after, "aicp_http_request_duration_seconds_count", method="GET", view="healthz") >= 1
    assert sample_value(after, "aicp_inference_tasks", status="running") == 2
    assert sample_value(after, "aicp_inference_tasks", status="stopped") == 1
    assert sample_value(after, "aicp_inference_tasks", status="failed") == 0
    assert sample_value(after, "aicp_tenants") == Tenant.objects.count() >= 1
    assert sample_value(after, "aicp_database_up") == 1
    assert sample_value(after, "aicp_build_info", version=version("aicp")) == 1


def test_metrics_token_is_required_when_set(client, db, settings):
    settings.AICP_METRICS_TOKEN = "metrics-" + secrets.token_urlsafe(16)

    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["code"] == "metrics_token_invalid"
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answered = client.get("/metrics", headers={"Authorization": f"Bearer {settings.AICP_METRICS_TOKEN}"})
    assert answered.status_code == 200
    assert sample_value(answered.content.decode(), "aicp_database_up") == 1


# --- JSON logs ------------------------------------------------------------------------------------------------


def test_json_log_lines_carry_the_fields_and_the_exception():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("aicp.tests.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("the cause\non two lines")
        except ValueError:
            logger.exception("task %s failed", 7, extra={"task_id": 7, "tenant": "acme", "request": object()})
    finally:
        logger.removeHandler(handler)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "aicp.tests.json"
    assert entry["message"] == "task 7 failed"
    logged_at = datetime.fromisoformat(entry["time"])
    assert logged_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - logged_at).total_seconds()) < 60
    assert "Traceback" in entry["exc_info"] and "ValueError: the cause\non two lines" in entry["exc_info"]
    assert (entry["task_id"], entry["tenant"]) == (7, "acme")
    assert "request" not in entry  # not JSON: left out, never turned into text


# --- HTTPS ----------------------------------------------------------------------------------------------------


@pytest.fixture
def https_required(settings):
    """What AICP_SECURE turns on, on top of the test settings (read once, with DEBUG on)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_plain_http_redirects_to_https_except_for_the_cluster_paths(client, db, https_required):
    redirected = client.get("/")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/"
    # Behind the Ingress: TLS ended there, and it says so.
    assert client.get("/", headers={"X-Forwarded-Proto": "https"}).status_code == 302  # to the sign-in page

    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path
    for path in INGEST_PATHS:
        answer = client.post(path, data={}, content_type="application/json")
        assert answer.status_code == 401, path  # the ingest token is checked; no redirect
        assert answer.json()["code"] == "ingest_token_invalid"


# --- static files and gunicorn --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def static_root(tmp_path_factory) -> Path:
    """``collectstatic`` as the image's build runs it."""
    root = tmp_path_factory.mktemp("static")
    result = run_manage("collectstatic", "--noinput", environment=production_environment(AICP_STATIC_ROOT=str(root)))
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def hashed_name(static_root: Path, name: str) -> str:
    return json.loads((static_root / "staticfiles.json").read_text())["paths"][name]


def test_collectstatic_writes_hashed_and_compressed_files(static_root):
    stylesheet = hashed_name(static_root, "console/console.css")
    assert re.fullmatch(r"console/console\.[0-9a-f]{12}\.css", stylesheet)
    assert (static_root / stylesheet).read_bytes() == (ROOT / "static/console/console.css").read_bytes()
    assert (static_root / f"{stylesheet}.gz").is_file()
    assert hashed_name(static_root, "vendor/htmx-2.0.11/htmx.min.js").startswith("vendor/htmx-2.0.11/htmx.min.")


@pytest.fixture
def gunicorn_server(django_db_setup, static_root, tmp_path):
    """The web pod's command on a free port: production settings, two workers sharing a metrics folder."""
    port = free_port()
    environment = production_environment(
        # 127.0.0.1 plays the pod's address, by which the kubelet and Prometheus reach it.
        DJANGO_ALLOWED_HOSTS="aicp.example.com,127.0.0.1",
        AICP_STATIC_ROOT=str(static_root),
        AICP_STORAGE_ROOT=str(tmp_path / "storage"),
        AICP_WEB_PORT=str(port),
        AICP_WEB_WORKERS="2",
        AICP_WEB_THREADS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
    )
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:controlplane.gunicorn_conf"],
            cwd=ROOT,
            env=process_environment(environment),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield base_url, log_path, tmp_path / "prometheus"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gunicorn_serves_the_production_settings(gunicorn_server, static_root):
    base_url, log_path, metrics_folder = gunicorn_server
    behind_ingress = {"Host": "aicp.example.com", "X-Forwarded-Proto": "https"}

    # The kubelet and Prometheus: plain HTTP to the pod's address.
    assert requests.get(f"{base_url}/readyz", timeout=10).json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok"},
    }
    # An adapter: plain HTTP to the Service's name (AICP_INGEST_URL's host), answered by the ingest API itself.
    ingest = requests.post(f"{base_url}/api/v1/ingest/metrics/", json={}, headers={"Host": "aicp.aicp-system.svc"})
    assert (ingest.status_code, ingest.json()["code"]) == (401, "ingest_token_invalid")
    assert requests.get(f"{base_url}/healthz", headers={"Host": "elsewhere.example"}).status_code == 400

    # A browser's plain HTTP is sent to HTTPS; over HTTPS (ended at the Ingress) the console answers, with HSTS.
    plain = requests.get(f"{base_url}/login/", headers={"Host": "aicp.example.com"}, allow_redirects=False)
    assert (plain.status_code, plain.headers["Location"]) == (301, "https://aicp.example.com/login/")
    page = requests.get(f"{base_url}/login/", headers=behind_ingress, timeout=10)
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    csrf_cookie = page.raw.headers.getlist("Set-Cookie")
    assert any(cookie.startswith("csrftoken=") and "Secure" in cookie for cookie in csrf_cookie), csrf_cookie

    # The console's stylesheet by its hashed name, compressed, cached for good.
    stylesheet_url = f"/static/{hashed_name(static_root, 'console/console.css')}"
    assert f'href="{stylesheet_url}"' in page.text
    stylesheet = requests.get(f"{base_url}{stylesheet_url}", headers={**behind_ingress, "Accept-Encoding": "gzip"})
    assert stylesheet.status_code == 200
    assert stylesheet.headers["Content-Encoding"] == "gzip"
    assert "immutable" in stylesheet.headers["Cache-Control"]
    assert stylesheet.content == (ROOT / "static/console/console.css").read_bytes()
    assert requests.get(f"{base_url}/api/v1/no-such-endpoint/", headers=behind_ingress).status_code == 404

    # Request counts add up over both workers, whichever answered.
    def healthz_count() -> float:
        scrape = requests.get(f"{base_url}/metrics", timeout=10)
        assert scrape.status_code == 200
        assert sample_value(scrape.text, "aicp_database_up") == 1
        return sample_sum(scrape.text, "aicp_http_requests_total", method="GET", view="healthz", status="200")

    before = healthz_count()
    for _ in range(6):
        assert requests.get(f"{base_url}/healthz", timeout=10).status_code == 200  # a new connection each time
    assert healthz_count() == before + 6
    assert list(metrics_folder.glob("counter_*.db"))

    # Logs: one JSON object a line, gunicorn's own and Django's alike.
    time.sleep(0.5)
    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert any(entry["logger"] == "gunicorn.error" and "Booting worker" in entry["message"] for entry in entries)
    not_found = [entry for entry in entries if entry["message"] == "Not Found: /api/v1/no-such-endpoint/"]
    assert not_found and not_found[0]["logger"] == "django.request" and not_found[0]["status_code"] == 404
