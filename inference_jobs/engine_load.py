"""Storing the engine-load snapshots of a task's instances: the latest per instance wins.

The ingest endpoint (``telemetry``: ``POST /api/v1/ingest/engine-load/``) checks the snapshots' shape and calls
``engine_load_store``; reads go through ``InferenceTask.engine_load``, which sums the instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction

from controlplane.locks import platform_lock
from inference_jobs.constants import ENGINE_LOAD_FRESH_S
from inference_jobs.models import InferenceTask, TaskEngineLoad


@dataclass(frozen=True)
class Snapshot:
    instance: str
    observed_at: datetime
    requests_running: int | None
    requests_waiting: int | None
    kv_cache_usage: float | None


_COLUMNS = ("task_id", "instance", "observed_at", "requests_running", "requests_waiting", "kv_cache_usage")


def engine_load_store(*, task: InferenceTask, snapshots: list[Snapshot]) -> int:
    """Keep each instance's newest snapshot; returns how many rows were written (the others were older than, or
    as old as, what is stored: a late or repeated delivery never turns the figures back).

    One ``INSERT ... ON CONFLICT (task, instance) DO UPDATE ... WHERE stored.observed_at < new.observed_at``, so
    no read-then-write can interleave with another delivery. Rows of instances silent for longer than
    ``ENGINE_LOAD_FRESH_S`` before the newest snapshot are deleted in the same transaction: they would not count
    any more, and a task's rows stay as many as its live instances. The task's advisory lock comes first: two
    instances reporting after an outage would otherwise each upsert its own row and then wait to delete the
    other's stale one (a deadlock). Holding it costs nothing: a task's instances send one snapshot every 5 s.
    """
    newest: dict[str, Snapshot] = {}
    for snapshot in snapshots:  # one row per instance in the statement: ON CONFLICT may touch a row once
        kept = newest.get(snapshot.instance)
        if kept is None or snapshot.observed_at > kept.observed_at:
            newest[snapshot.instance] = snapshot
    if not newest:
        return 0
    meta = TaskEngineLoad._meta
    quote = connection.ops.quote_name
    observed = meta.get_field("observed_at")
    params: list = []
    for snapshot in newest.values():
        params += [task.pk, snapshot.instance, observed.get_db_prep_value(snapshot.observed_at, connection),
                   snapshot.requests_running, snapshot.requests_waiting, snapshot.kv_cache_usage]  # fmt: skip
    table = quote(meta.db_table)
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    updated = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in _COLUMNS[2:])
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in _COLUMNS)}) VALUES {', '.join([row] * len(newest))} "
        f"ON CONFLICT ({quote('task_id')}, {quote('instance')}) DO UPDATE SET {updated} "
        f"WHERE {table}.{quote('observed_at')} < EXCLUDED.{quote('observed_at')} RETURNING {quote('id')}"
    )
    latest = max(s.observed_at for s in newest.values())
    with transaction.atomic():
        platform_lock(f"engine-load:{task.pk}")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written = len(cursor.fetchall())
        TaskEngineLoad.objects.filter(
            task=task, observed_at__lt=latest - timedelta(seconds=ENGINE_LOAD_FRESH_S)
        ).delete()
    return written
