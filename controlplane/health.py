"""Liveness and readiness for the kubelet's probes: ``/healthz`` and ``/readyz``, open to all, GET or HEAD.

``/healthz`` says only that the process answers HTTP; it never touches the database, so a database outage does
not get every web pod restarted. ``/readyz`` answers 200 when the database answers a query and every migration
is applied (a new web pod stays out of its Service until the migration Job has run), else 503 naming the check
that failed:

    {"status": "unavailable", "checks": {"database": "ok", "migrations": "2 unapplied: catalog.0005_..., ..."}}

Once all migrations are applied the answer is kept for the life of the process (the code cannot gain a
migration while it runs), so a ready pod's probe costs one ``SELECT 1``.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.http import require_safe

log = logging.getLogger(__name__)

OK = "ok"
MIGRATIONS_NAMED = 5  # unapplied migrations named in the answer; the count covers the rest


class _MigrationsApplied:
    """Whether this process has seen every migration applied (then it need not look again)."""

    seen = False


migrations_applied = _MigrationsApplied()


def _error_text(exc: Exception) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


def database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        log.warning("readiness: the database does not answer: %s", exc)
        return f"unavailable: {_error_text(exc)}"
    return OK


def migrations_check() -> str:
    if migrations_applied.seen:
        return OK
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        return f"unknown: {_error_text(exc)}"
    if not plan:
        migrations_applied.seen = True
        return OK
    names = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    listed = ", ".join(names[:MIGRATIONS_NAMED]) + (", ..." if len(names) > MIGRATIONS_NAMED else "")
    return f"{len(names)} unapplied: {listed}"


@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_safe
def readyz(request):
    checks = {"database": database_check()}
    checks["migrations"] = migrations_check() if checks["database"] == OK else "not checked: no database"
    ready = all(verdict == OK for verdict in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
