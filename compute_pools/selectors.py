"""List reads of the compute-pool API: each row's usage in a constant number of queries."""

from __future__ import annotations

from django.db.models import F, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Greatest

from compute_pools.models import ComputePool, PoolGrant


def _used_compute_units(**outer: str) -> Coalesce:
    """Compute units held by the tasks matching ``field=OuterRef(outer field)``, counted as admission counts
    them (``inference_jobs.selectors``): every task that is not stopped."""
    from inference_jobs.models import InferenceTask
    from inference_jobs.selectors import COMPUTE_UNITS, HOLDS_COMPUTE

    tasks = InferenceTask.objects.filter(HOLDS_COMPUTE, **{key: OuterRef(value) for key, value in outer.items()})
    total = tasks.order_by().values(*outer).annotate(total=Sum(COMPUTE_UNITS)).values("total")
    return Coalesce(Subquery(total, output_field=IntegerField()), 0)


def compute_pool_list_queryset() -> QuerySet[ComputePool]:
    return (
        ComputePool.objects.select_related("accelerator_type")
        .annotate(used_compute_units=_used_compute_units(compute_pool="pk"))
        .annotate(free_compute_units=Greatest(F("capacity_compute_units") - F("used_compute_units"), 0))
    )


def pool_grant_list_queryset() -> QuerySet[PoolGrant]:
    return PoolGrant.objects.select_related("pool", "tenant").annotate(
        used_compute_units=_used_compute_units(compute_pool="pool_id", tenant="tenant_id")
    )
