"""Storing what adapters send (request metrics, engine load), and forgetting raw rows past their retention."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from inference_jobs.engine_load import Snapshot, engine_load_store
from inference_jobs.models import InferenceTask
from telemetry.ingest import IngestResult, check_records, store_new
from telemetry.models import LatencyRollup, RequestMetric, UsageHour
from telemetry.records import ENGINE_LOAD_FIELDS, METRIC_FIELDS, meets_targets, metric_cross_check
from telemetry.rollups import roll_up

PURGE_CHUNK = 10_000


def metrics_ingest(*, task: InferenceTask, records: list) -> IngestResult:
    """Store a batch of the task's request metrics: each new record once, with its roll-ups and usage."""
    batch = check_records(records, METRIC_FIELDS, metric_cross_check(task))
    now = timezone.now()

    def row(record: dict) -> RequestMetric:
        return RequestMetric(
            id=record["id"], tenant_id=task.tenant_id, task_id=task.pk, api_key_id=record["api_key_id"],
            started_at=record["started_at"], received_at=now, status=record["status"], stream=record["stream"],
            ttft_ms=record["ttft_ms"], tpot_ms=record["tpot_ms"], e2e_ms=record["e2e_ms"],
            itl_hist=record["itl_hist"], chunks=record["chunks"], input_tokens=record["input_tokens"],
            output_tokens=record["output_tokens"], good=meets_targets(record, task.ttft_slo_ms, task.tpot_slo_ms),
        )  # fmt: skip

    def add_up(new_rows: list[RequestMetric]) -> None:
        roll_up(tenant_id=task.tenant_id, task_id=task.pk, rows=new_rows)

    return store_new(RequestMetric, batch, row, add_up)


def engine_load_ingest(*, task: InferenceTask, records: list) -> IngestResult:
    """Keep the newest snapshot of each of the task's instances; an older or repeated one changes nothing."""
    batch = check_records(records, ENGINE_LOAD_FIELDS, lambda record: {})
    stored = engine_load_store(task=task, snapshots=[Snapshot(**record) for record in batch.clean])
    return IngestResult(received=batch.received, stored=stored, rejected=batch.rejected)


def metrics_purge(*, now=None) -> dict[str, int]:
    """Delete raw request metrics and roll-ups older than their retention, in chunks (short transactions)."""
    now = now or timezone.now()
    raw_cutoff = now - timedelta(days=settings.AICP_METRICS_RAW_RETENTION_DAYS)
    rollup_cutoff = now - timedelta(days=settings.AICP_METRICS_ROLLUP_RETENTION_DAYS)
    return {
        "raw": delete_in_chunks(RequestMetric.objects.filter(started_at__lt=raw_cutoff)),
        "rollups": delete_in_chunks(LatencyRollup.objects.filter(start__lt=rollup_cutoff)),
        "usage": delete_in_chunks(UsageHour.objects.filter(hour__lt=rollup_cutoff)),
    }


def delete_in_chunks(queryset) -> int:
    """Delete what ``queryset`` matches, ``PURGE_CHUNK`` rows per statement; returns how many."""
    deleted = 0
    while True:
        pks = list(queryset.values_list("pk", flat=True)[:PURGE_CHUNK])
        if not pks:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=pks).delete()[0]
