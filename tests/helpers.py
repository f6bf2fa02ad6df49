"""Helpers shared by the suites: counting the queries of a list, racing concurrent requests, reading console pages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

# The variables that configure AICP; a subprocess sees only those its test gives it, never the caller's own.
CONFIGURATION_PREFIXES = ("DJANGO_", "AICP_", "DATABASE_", "CELERY_", "PROMETHEUS_")


def database_url() -> str:
    """The database the tests use (pytest-django's ``test_…`` copy once it is set up) as a ``DATABASE_URL``."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_environment(environment: dict[str, str]) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(CONFIGURATION_PREFIXES)}
    return {**inherited, **environment}


def run_manage(*args: str, environment: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    """``manage.py`` in a subprocess configured by ``environment`` alone (see ``CONFIGURATION_PREFIXES``)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=process_environment(environment),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def list_query_counts(client: APIClient, url: str, fill: Callable[[int], None], sizes=(3, 30)) -> list[int]:
    """The queries a list endpoint runs for each page size; ``fill(n)`` makes ``n`` rows visible to the client.

    The client's first request is not counted: a token's first use also records that use.
    """
    client.get(url)
    counts = []
    for size in sizes:
        fill(size)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, {"limit": size})
        assert response.status_code == 200, response.content
        assert len(response.json()["results"]) == size
        counts.append(len(captured))
    return counts


def page_query_counts(client, url: str, fill: Callable[[int], None], sizes=(3, 30)) -> list[int]:
    """The queries a console page runs for each number of rows; ``fill(n)`` makes ``n`` rows visible to the
    client. The first request is not counted (it warms the session and the user's roles)."""
    client.get(url)
    counts = []
    for size in sizes:
        fill(size)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        counts.append(len(captured))
    return counts


def race(requests: list[Callable[[], object]]) -> list[tuple[int, str | None]]:
    """Send every request at the same moment, one thread (and database connection) each; return each
    response's status and error code (None for a success or a console page)."""
    barrier = threading.Barrier(len(requests))
    results: list[tuple[int, str | None]] = [(0, None)] * len(requests)

    def send(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            response = requests[index]()
            is_json = response.get("Content-Type", "").startswith("application/json")
            code = response.json().get("code") if response.status_code >= 400 and is_json else None
            results[index] = (response.status_code, code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def field_error_codes(response, field: str) -> list[str]:
    """The ``data-code`` of each error a console page shows on one form field (``console/_field.html``)."""
    html = response.content.decode()
    block = re.search(rf'id="field-{field}">(.*?)\n</div>', html, re.DOTALL)
    assert block, f"no field {field} on the page"
    return re.findall(r'class="error" data-code="([^"]+)"', block.group(1))


def row(response, marker: str) -> str:
    """The table row of a console page carrying ``marker`` (e.g. ``data-tenant="acme"``), or "" when absent."""
    found = re.search(rf"<tr {marker}>(.*?)</tr>", response.content.decode(), re.DOTALL)
    return found.group(1) if found else ""
