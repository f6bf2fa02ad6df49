"""Every write to accelerator types, compute pools and pool grants, with its rules and its audit entry.

Capacity and grant shares are counted by task admission under the tenant and pool row locks; the edits
here take the same locks in the same order (tenant → pool), so an admin shrinking a pool or a share and a
task being admitted at the same moment cannot both succeed past the limit.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from controlplane.errors import (
    AcceleratorTypeInUseError,
    PoolCapacityBelowUseError,
    PoolGrantExistsError,
    PoolGrantInUseError,
    PoolGrantShareBelowUseError,
    PoolInUseError,
)
from controlplane.services import pick, slugged_create
from tenancy.audit import audit_record, audit_snapshot
from tenancy.models import Tenant

ACCELERATOR_TYPE_FIELDS = (
    "name",
    "vendor",
    "kubernetes_resource_name",
    "supports_normal_mode",
    "supports_high_performance_mode",
    "memory_per_card_gib",
)
COMPUTE_POOL_FIELDS = (
    "name",
    "description",
    "accelerator_type",
    "capacity_compute_units",
    "memory_per_card_gib",
    "node_selector",
    "tolerations",
)


def accelerator_type_create(*, actor, slug: str, **fields: Any) -> AcceleratorType:
    accelerator_type = AcceleratorType(slug=slug, **pick(fields, ACCELERATOR_TYPE_FIELDS))
    return slugged_create(accelerator_type, actor=actor, action="accelerator_type.create")


def accelerator_type_update(*, actor, accelerator_type: AcceleratorType, **fields: Any) -> AcceleratorType:
    """Edit what a kind of card is called and can do (e.g. the device plugin's resource name). The vendor
    stays fixed while pools use the type: their tasks run runtime images built for that vendor."""
    with transaction.atomic():
        accelerator_type = AcceleratorType.objects.select_for_update().get(pk=accelerator_type.pk)
        before = audit_snapshot(accelerator_type)
        if fields.get("vendor", accelerator_type.vendor) != accelerator_type.vendor and accelerator_type.pools.exists():
            raise AcceleratorTypeInUseError(
                f"Compute pools use '{accelerator_type.slug}'; its vendor cannot change.", field="vendor"
            )
        for key, value in pick(fields, ACCELERATOR_TYPE_FIELDS).items():
            setattr(accelerator_type, key, value)
        accelerator_type.full_clean(validate_unique=False)
        accelerator_type.save()
        audit_record(
            actor=actor,
            action="accelerator_type.update",
            obj=accelerator_type,
            before=before,
            after=audit_snapshot(accelerator_type),
        )
    return accelerator_type


def accelerator_type_delete(*, actor, accelerator_type: AcceleratorType) -> None:
    with transaction.atomic():
        accelerator_type = AcceleratorType.objects.select_for_update().get(pk=accelerator_type.pk)
        if accelerator_type.pools.exists():
            raise AcceleratorTypeInUseError(f"Compute pools use '{accelerator_type.slug}'; delete them first.")
        audit_record(
            actor=actor, action="accelerator_type.delete", obj=accelerator_type, before=audit_snapshot(accelerator_type)
        )
        accelerator_type.delete()


def compute_pool_create(*, actor, slug: str, accelerator_type: AcceleratorType, **fields: Any) -> ComputePool:
    """A new pool; its memory per card defaults to the accelerator type's typical card."""
    fields = pick(fields, COMPUTE_POOL_FIELDS)
    if fields.get("memory_per_card_gib") is None:
        fields["memory_per_card_gib"] = accelerator_type.memory_per_card_gib
    pool = ComputePool(slug=slug, **{**fields, "accelerator_type": accelerator_type})
    return slugged_create(pool, actor=actor, action="compute_pool.create")


def _locked_pool(pool_id: int) -> ComputePool:
    return ComputePool.objects.select_for_update(of=("self",)).select_related("accelerator_type").get(pk=pool_id)


def compute_pool_update(*, actor, pool: ComputePool, **fields: Any) -> ComputePool:
    """Change a pool. Its capacity may not drop below what its tasks hold (counted under the pool's row
    lock, as admission counts it); its accelerator type is fixed once tasks run on it."""
    from inference_jobs.selectors import pool_used_compute_units

    with transaction.atomic():
        pool = _locked_pool(pool.pk)
        before = audit_snapshot(pool)
        capacity = fields.get("capacity_compute_units", pool.capacity_compute_units)
        used = pool_used_compute_units(pool)
        if capacity is not None and capacity < used:
            raise PoolCapacityBelowUseError(
                f"Tasks on compute pool '{pool.slug}' hold {used} compute units; the capacity cannot be lower."
            )
        new_type = fields.get("accelerator_type", pool.accelerator_type)
        if new_type.pk != pool.accelerator_type_id and pool.tasks.exists():
            raise PoolInUseError(
                f"Compute pool '{pool.slug}' has tasks; its accelerator type cannot change.", field="accelerator_type"
            )
        for key, value in pick(fields, COMPUTE_POOL_FIELDS).items():
            setattr(pool, key, value)
        pool.full_clean(validate_unique=False)
        pool.save()
        audit_record(actor=actor, action="compute_pool.update", obj=pool, before=before, after=audit_snapshot(pool))
    return pool


def compute_pool_delete(*, actor, pool: ComputePool) -> None:
    """Refused while any task (stopped ones too) belongs to the pool; its grants go with it."""
    with transaction.atomic():
        pool = _locked_pool(pool.pk)
        if pool.tasks.exists():
            raise PoolInUseError(f"Compute pool '{pool.slug}' still has inference tasks; delete them first.")
        audit_record(actor=actor, action="compute_pool.delete", obj=pool, before=audit_snapshot(pool))
        pool.delete()


def _lock_tenant_and_pool(tenant_id: int, pool_id: int) -> tuple[Tenant, ComputePool]:
    tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
    return tenant, _locked_pool(pool_id)


def pool_grant_create(*, actor, pool: ComputePool, tenant: Tenant, max_compute_units: int | None = None) -> PoolGrant:
    """Authorise ``tenant`` to run tasks on ``pool``, optionally capped at a share of its capacity."""
    with transaction.atomic():
        tenant, pool = _lock_tenant_and_pool(tenant.pk, pool.pk)
        message = f"Compute pool '{pool.slug}' is already granted to tenant '{tenant.slug}'."
        if PoolGrant.objects.filter(pool=pool, tenant=tenant).exists():
            raise PoolGrantExistsError(message)
        grant = PoolGrant(pool=pool, tenant=tenant, max_compute_units=max_compute_units)
        grant.full_clean(validate_unique=False, validate_constraints=False)
        try:
            with transaction.atomic():
                grant.save()
        except IntegrityError as exc:
            raise PoolGrantExistsError(message) from exc
        audit_record(actor=actor, action="pool_grant.create", obj=grant, tenant=tenant, after=audit_snapshot(grant))
    return grant


def pool_grant_update(*, actor, grant: PoolGrant, max_compute_units: int | None) -> PoolGrant:
    """Change the tenant's share of the pool; it may not drop below what the tenant's tasks hold there."""
    from inference_jobs.selectors import pool_usage

    with transaction.atomic():
        tenant, pool = _lock_tenant_and_pool(grant.tenant_id, grant.pool_id)
        grant = PoolGrant.objects.select_for_update().get(pk=grant.pk)
        before = audit_snapshot(grant)
        used = pool_usage(pool, tenant).used_by_tenant
        if max_compute_units is not None and max_compute_units < used:
            raise PoolGrantShareBelowUseError(
                f"Tenant '{tenant.slug}' holds {used} compute units in compute pool '{pool.slug}'; "
                "its share cannot be lower."
            )
        grant.max_compute_units = max_compute_units
        grant.full_clean(validate_unique=False, validate_constraints=False)
        grant.save(update_fields=["max_compute_units"])
        audit_record(
            actor=actor,
            action="pool_grant.update",
            obj=grant,
            tenant=tenant,
            before=before,
            after=audit_snapshot(grant),
        )
    return grant


def pool_grant_delete(*, actor, grant: PoolGrant) -> None:
    """Withdraw a grant. Refused while the tenant has tasks in the pool, stopped ones included: they could
    otherwise start again on a pool the tenant may no longer use."""
    with transaction.atomic():
        tenant, pool = _lock_tenant_and_pool(grant.tenant_id, grant.pool_id)
        grant = PoolGrant.objects.select_for_update().get(pk=grant.pk)
        if pool.tasks.filter(tenant=tenant).exists():
            raise PoolGrantInUseError(
                f"Tenant '{tenant.slug}' still has inference tasks in compute pool '{pool.slug}'; delete them first."
            )
        audit_record(actor=actor, action="pool_grant.delete", obj=grant, tenant=tenant, before=audit_snapshot(grant))
        grant.delete()
