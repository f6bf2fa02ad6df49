"""Reads that count: what tenants and pools use, and what a gateway has left."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.db.models.functions import Coalesce

from catalog.models import RuntimeImageVersion
from inference_jobs.choices import DesiredState
from inference_jobs.models import InferenceTask

# A task holds its compute units unless it is stopped: a deleting task still has pods until it is gone.
HOLDS_COMPUTE = ~Q(desired_state=DesiredState.STOPPED)
COMPUTE_UNITS = F("compute_units_per_instance") * F("instances")


@dataclass(frozen=True)
class TenantUsage:
    tasks: int
    compute_units: int


def tenant_usage(tenant, *, exclude_task_id: int | None = None) -> TenantUsage:
    tasks = InferenceTask.objects.filter(tenant=tenant)
    if exclude_task_id is not None:
        tasks = tasks.exclude(pk=exclude_task_id)
    totals = tasks.aggregate(tasks=Count("id"), compute_units=Coalesce(Sum(COMPUTE_UNITS, filter=HOLDS_COMPUTE), 0))
    return TenantUsage(tasks=totals["tasks"], compute_units=totals["compute_units"])


@dataclass(frozen=True)
class PoolUsage:
    used: int  # by all tenants
    used_by_tenant: int


def pool_usage(pool, tenant, *, exclude_task_id: int | None = None) -> PoolUsage:
    tasks = InferenceTask.objects.filter(compute_pool=pool).filter(HOLDS_COMPUTE)
    if exclude_task_id is not None:
        tasks = tasks.exclude(pk=exclude_task_id)
    totals = tasks.aggregate(
        used=Coalesce(Sum(COMPUTE_UNITS), 0),
        used_by_tenant=Coalesce(Sum(COMPUTE_UNITS, filter=Q(tenant=tenant)), 0),
    )
    return PoolUsage(used=totals["used"], used_by_tenant=totals["used_by_tenant"])


def pool_used_compute_units(pool) -> int:
    return (
        InferenceTask.objects.filter(compute_pool=pool)
        .filter(HOLDS_COMPUTE)
        .aggregate(used=Coalesce(Sum(COMPUTE_UNITS), 0))["used"]
    )


def platform_task_count() -> int:
    return InferenceTask.objects.count()


def newest_runtime_image_version(*, mode: str, vendor: str) -> RuntimeImageVersion | None:
    """What a new task of ``mode`` on ``vendor``'s cards deploys: the most recently published version."""
    return (
        RuntimeImageVersion.objects.select_related("image")
        .filter(image__mode=mode, image__vendor=vendor)
        .order_by("-published_at", "-id")
        .first()
    )


def newer_version_exists():
    """An expression for ``InferenceTask`` querysets: a newer version of the task's pinned image is out."""
    return Exists(
        RuntimeImageVersion.objects.filter(
            image_id=OuterRef("runtime_image_version__image_id"),
            published_at__gt=OuterRef("runtime_image_version__published_at"),
        )
    )


# A model's whole config.json and free texts would be parsed for every row of a page and never shown.
_MODEL_FIELDS_A_TASK_LIST_NEVER_SHOWS = ("config", "description", "status_message", "storage_path", "checksum_sha256")


def task_list_queryset():
    """Tasks with everything a list shows, in a fixed number of queries whatever the page size.

    Only the per-row relations are joined; the tenant, pool and gateway repeat across rows and come by
    prefetch (one ``WHERE id IN (...)`` each). Joining all six made PostgreSQL spend 15-25 ms *planning*
    the 8-relation join for a 2 ms execution (``make bench-api``)."""
    return (
        InferenceTask.objects.select_related("model", "gateway_port", "runtime_image_version__image")
        .defer(*(f"model__{name}" for name in _MODEL_FIELDS_A_TASK_LIST_NEVER_SHOWS))
        .prefetch_related("tenant", "compute_pool", "gateway")
        .annotate(update_available=newer_version_exists())
    )
