"""Every write to reflow records: storing captured pairs, reviewing them, and purging past retention."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from controlplane import errors
from inference_jobs.models import InferenceTask
from reflow.choices import ReviewAction, ReviewStatus
from reflow.constants import MAX_BULK_REVIEW, MAX_OUTPUT_CHARS
from reflow.models import ReflowRecord
from reflow.records import REFLOW_FIELDS, reflow_cross_check
from telemetry.ingest import IngestResult, check_records, store_new
from telemetry.services import delete_in_chunks
from tenancy.audit import audit_record
from tenancy.models import Tenant


class ReflowEditEmptyError(errors.PlatformRuleError):
    code = "reflow_edit_empty"
    field = "edited_output"


class ReflowBulkActionError(errors.PlatformRuleError):
    code = "reflow_bulk_action"
    field = "action"


class ReflowRecordsNotFoundError(errors.PlatformRuleError):
    code = "reflow_records_not_found"
    field = "ids"


def reflow_ingest(*, task: InferenceTask, records: list) -> IngestResult:
    """Store a batch of the task's captured pairs, each record once (by id), for the task's tenant.

    Records are accepted while the task's reflow is off too: they were captured before it was switched off
    (the adapter stops capturing once the reconcile that follows the switch reaches it).
    """
    batch = check_records(records, REFLOW_FIELDS, reflow_cross_check(task))
    now = timezone.now()

    def row(r: dict) -> ReflowRecord:
        return ReflowRecord(
            id=r["id"], tenant_id=task.tenant_id, task_id=task.pk, task_name=task.name, api_key_id=r["api_key_id"],
            endpoint=r["endpoint"], messages=r["messages"], parameters=r["parameters"], output=r["output"],
            finish_reason=r["finish_reason"] or "", input_tokens=r["input_tokens"], output_tokens=r["output_tokens"],
            ttft_ms=r["ttft_ms"], tpot_ms=r["tpot_ms"], status=r["status"],
            runtime_image_version=r["runtime_image_version"], started_at=r["started_at"],
            finished_at=r["finished_at"], received_at=now,
        )  # fmt: skip

    return store_new(ReflowRecord, batch, row)


def _review_fields(record: ReflowRecord) -> dict:
    return {"review_status": record.review_status, "edited_output": record.edited_output}


def _apply(record: ReflowRecord, *, actor, action: str, edited_output: str | None, now) -> None:
    before = _review_fields(record)
    if action == ReviewAction.EDIT:
        record.edited_output = edited_output
        record.review_status = ReviewStatus.APPROVED
    elif action == ReviewAction.APPROVE:
        record.review_status = ReviewStatus.APPROVED
    else:
        record.review_status = ReviewStatus.REJECTED
    record.reviewed_by = actor
    record.reviewed_at = now
    audit_record(actor=actor, action=f"reflow.{action}", obj=record, tenant=record.tenant, before=before,
                 after=_review_fields(record))  # fmt: skip


def _check_edit(action: str, edited_output: str | None) -> None:
    if action != ReviewAction.EDIT:
        return
    if not edited_output or not edited_output.strip():
        raise ReflowEditEmptyError("An edit needs the corrected answer in edited_output.")
    if len(edited_output) > MAX_OUTPUT_CHARS:
        raise ReflowEditEmptyError(f"edited_output may be at most {MAX_OUTPUT_CHARS} characters.")


def reflow_review(*, actor, record: ReflowRecord, action: str, edited_output: str | None = None) -> ReflowRecord:
    """Approve, reject, or edit (which approves) one record. An edit keeps the captured output untouched."""
    _check_edit(action, edited_output)
    with transaction.atomic():
        record = ReflowRecord.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=record.pk)
        _apply(record, actor=actor, action=action, edited_output=edited_output, now=timezone.now())
        record.save(update_fields=["review_status", "edited_output", "reviewed_by", "reviewed_at"])
    return record


def reflow_review_bulk(*, actor, records, ids: list, action: str) -> int:
    """Approve or reject many records at once. ``records`` is what the caller may review; naming a record
    outside it (or one that does not exist) refuses the whole request, so nothing is half done."""
    if action not in (ReviewAction.APPROVE, ReviewAction.REJECT):
        raise ReflowBulkActionError("Bulk review approves or rejects; edit records one at a time.")
    ids = list(dict.fromkeys(ids))
    if not ids or len(ids) > MAX_BULK_REVIEW:
        raise ReflowRecordsNotFoundError(f"Name between 1 and {MAX_BULK_REVIEW} records.")
    with transaction.atomic():
        found = list(records.filter(pk__in=ids).select_for_update(of=("self",)).select_related("tenant").order_by("pk"))
        missing = sorted({str(pk) for pk in ids} - {str(record.pk) for record in found})
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ReflowRecordsNotFoundError(f"{len(missing)} of the records do not exist: {shown}.")
        now = timezone.now()
        for record in found:
            _apply(record, actor=actor, action=action, edited_output=None, now=now)
        ReflowRecord.objects.bulk_update(found, ["review_status", "reviewed_by", "reviewed_at"])
    return len(found)


def reflow_purge(*, now=None) -> int:
    """Delete every tenant's records captured longer ago than its ``reflow_retention_days``."""
    now = now or timezone.now()
    deleted = 0
    for tenant_id, days in Tenant.objects.values_list("pk", "reflow_retention_days"):
        deleted += delete_in_chunks(
            ReflowRecord.objects.filter(tenant_id=tenant_id, started_at__lt=now - timedelta(days=days))
        )
    return deleted
