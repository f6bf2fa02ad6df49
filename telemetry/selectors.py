"""Reads of usage: tokens and requests by tenant, task, API key and period; tokens per minute against quota."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, Sum
from django.db.models.functions import TruncDay, TruncMinute
from django.utils import timezone

from inference_jobs.models import InferenceTask
from telemetry.models import RequestMetric, UsageHour
from telemetry.periods import hour_of
from tenancy.choices import Action
from tenancy.models import Tenant, TenantAPIKey

USAGE_GROUPS = ("task", "api_key", "hour", "day")
MAX_USAGE_ROWS = 10_000
_COLUMNS = {"task": "task_id", "api_key": "api_key_id", "hour": "hour", "day": "day"}


def usage_summary(
    user, *, since: datetime, until: datetime, group_by: list[str], tenant: str = "", task=None, api_key=None
) -> dict:
    """Totals and rows grouped by tenant plus ``group_by``, over the hours that start in [since, until).

    Reads hourly counters only: a year of a busy tenant is a few thousand rows per task and key.
    """
    rows = UsageHour.objects.restrict(user, Action.VIEW).filter(hour__gte=hour_of(since), hour__lt=until)
    if tenant:
        rows = rows.filter(tenant__slug=tenant)
    if task is not None:
        rows = rows.filter(task_id=task)
    if api_key is not None:
        rows = rows.filter(api_key_id=api_key)
    sums = {name: Sum(name) for name in ("requests", "errors", "input_tokens", "output_tokens")}
    totals = {name: value or 0 for name, value in rows.aggregate(**sums).items()}
    totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
    if "day" in group_by:
        rows = rows.annotate(day=TruncDay("hour"))
    keys = ["tenant__slug", *(_COLUMNS[name] for name in group_by)]
    grouped = list(rows.values(*keys).annotate(**sums).order_by(*keys)[: MAX_USAGE_ROWS + 1])
    truncated = len(grouped) > MAX_USAGE_ROWS
    task_names = _names(InferenceTask, {row["task_id"] for row in grouped if "task_id" in row})
    key_names = _names(TenantAPIKey, {row["api_key_id"] for row in grouped if "api_key_id" in row})
    results = []
    for row in grouped[:MAX_USAGE_ROWS]:
        entry = {"tenant": row.pop("tenant__slug")}
        if "task_id" in row:
            entry["task"] = row["task_id"]
            entry["task_name"] = task_names.get(row.pop("task_id"))
        if "api_key_id" in row:
            entry["api_key"] = row["api_key_id"]
            entry["api_key_name"] = key_names.get(row.pop("api_key_id"))
        entry.update(row)
        entry["total_tokens"] = row["input_tokens"] + row["output_tokens"]
        results.append(entry)
    return {"since": hour_of(since), "until": until, "group_by": group_by, "totals": totals,
            "truncated": truncated, "results": results}  # fmt: skip


def _names(model, ids: set) -> dict:
    return dict(model.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}


def tokens_per_minute(tenant: Tenant, *, now: datetime | None = None) -> dict:
    """The tenant's input + output tokens in each of the last 60 minutes, next to its quota.

    From the raw request rows (minutes are finer than the hourly counters); ``last_minute`` is the 60 seconds
    up to now, ``peak`` the busiest whole minute of the hour.
    """
    now = now or timezone.now()
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    recent = RequestMetric.objects.filter(tenant=tenant, started_at__gte=first, started_at__lte=now)
    per_minute = dict(
        recent.annotate(minute=TruncMinute("started_at"))
        .values("minute")
        .annotate(tokens=Sum(F("input_tokens") + F("output_tokens")))
        .values_list("minute", "tokens")
    )
    last_minute = recent.filter(started_at__gt=now - timedelta(minutes=1)).aggregate(
        tokens=Sum(F("input_tokens") + F("output_tokens"))
    )["tokens"]
    series = [
        {"minute": minute, "tokens": per_minute.get(minute, 0)}
        for minute in (first + timedelta(minutes=i) for i in range(60))
    ]
    return {
        "tenant": tenant.slug,
        "tokens_per_minute_quota": tenant.max_tokens_per_minute,
        "last_minute": last_minute or 0,
        "peak": max(point["tokens"] for point in series),
        "series": series,
    }


def access_log_queryset():
    return UsageHour.objects.select_related("tenant")
