"""Compute-pool services: capacity and shares never drop below what tasks hold; grants in use stay."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from compute_pools import services
from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from controlplane import errors
from inference_jobs.services import task_create
from tenancy.models import AuditEntry
from tests import factories
from tests.conftest import make_deployable

pytestmark = pytest.mark.django_db


def test_an_accelerator_types_resource_name_is_editable_and_audited(platform_admin):
    nvidia = factories.accelerator("nvidia-gpu")
    services.accelerator_type_update(
        actor=platform_admin, accelerator_type=nvidia, kubernetes_resource_name="example.com/gpu"
    )
    assert AcceleratorType.objects.get(slug="nvidia-gpu").kubernetes_resource_name == "example.com/gpu"
    entry = AuditEntry.objects.get(action="accelerator_type.update")
    assert entry.after == {"kubernetes_resource_name": "example.com/gpu"}


def test_a_new_accelerator_type_and_a_taken_slug(platform_admin):
    fields = {"name": "Ascend", "vendor": "none", "kubernetes_resource_name": "huawei.com/npu"}
    services.accelerator_type_create(actor=platform_admin, slug="ascend", **fields)
    with pytest.raises(errors.SlugTakenError):
        services.accelerator_type_create(actor=platform_admin, slug="ascend", **fields)
    assert AcceleratorType.objects.filter(slug="ascend").count() == 1


def test_the_vendor_of_a_type_in_use_is_fixed_and_it_cannot_be_deleted(platform_admin):
    pool = factories.ComputePoolFactory(accelerator_type=factories.accelerator("iluvatar-mr-v100"))
    with pytest.raises(errors.AcceleratorTypeInUseError):
        services.accelerator_type_update(actor=platform_admin, accelerator_type=pool.accelerator_type, vendor="nvidia")
    with pytest.raises(errors.AcceleratorTypeInUseError):
        services.accelerator_type_delete(actor=platform_admin, accelerator_type=pool.accelerator_type)
    assert AcceleratorType.objects.get(pk=pool.accelerator_type_id).vendor == "iluvatar"


def test_a_pools_memory_per_card_defaults_to_its_accelerator_types(platform_admin):
    pool = services.compute_pool_create(
        actor=platform_admin, slug="mr", name="MR", accelerator_type=factories.accelerator("iluvatar-mr-v100"),
        capacity_compute_units=8,
    )  # fmt: skip
    assert pool.memory_per_card_gib == 32
    assert AuditEntry.objects.get(action="compute_pool.create").after["capacity_compute_units"] == 8


def test_a_pool_needs_a_positive_capacity(platform_admin):
    with pytest.raises(ValidationError) as caught:
        services.compute_pool_create(
            actor=platform_admin, slug="zero", name="Zero", accelerator_type=factories.accelerator("cpu"),
            capacity_compute_units=0,
        )  # fmt: skip
    assert "capacity_compute_units" in caught.value.message_dict


@pytest.mark.parametrize(("capacity", "refused"), [(5, True), (6, False), (7, False)])
def test_capacity_may_not_drop_below_what_tasks_hold(platform_admin, capacity, refused):
    pool = factories.ComputePoolFactory(capacity_compute_units=100)
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=2, instances=3)
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=8, desired_state="stopped")
    if refused:
        with pytest.raises(errors.PoolCapacityBelowUseError):
            services.compute_pool_update(actor=platform_admin, pool=pool, capacity_compute_units=capacity)
    else:
        services.compute_pool_update(actor=platform_admin, pool=pool, capacity_compute_units=capacity)
    assert ComputePool.objects.get(pk=pool.pk).capacity_compute_units == (100 if refused else capacity)


def test_a_shrunk_pool_admits_only_what_is_left(platform_admin):
    deployable = make_deployable(pool=factories.ComputePoolFactory(capacity_compute_units=10))
    task_create(actor=deployable.member, **deployable.task_fields(compute_units_per_instance=2))
    services.compute_pool_update(actor=platform_admin, pool=deployable.pool, capacity_compute_units=3)
    with pytest.raises(errors.PoolCapacityExceededError):
        task_create(actor=deployable.member, **deployable.task_fields(name="second", compute_units_per_instance=2))
    task_create(actor=deployable.member, **deployable.task_fields(name="third", compute_units_per_instance=1))


def test_a_pool_with_tasks_keeps_its_accelerator_type_and_is_not_deleted(platform_admin):
    task = factories.TaskFactory(desired_state="stopped")
    with pytest.raises(errors.PoolInUseError) as caught:
        services.compute_pool_update(
            actor=platform_admin, pool=task.compute_pool, accelerator_type=factories.accelerator("cpu")
        )
    assert caught.value.field == "accelerator_type"
    with pytest.raises(errors.PoolInUseError):
        services.compute_pool_delete(actor=platform_admin, pool=task.compute_pool)
    assert ComputePool.objects.filter(pk=task.compute_pool_id).exists()


def test_deleting_an_unused_pool_withdraws_its_grants(platform_admin):
    grant = factories.PoolGrantFactory()
    services.compute_pool_delete(actor=platform_admin, pool=grant.pool)
    assert not PoolGrant.objects.exists()
    assert AuditEntry.objects.filter(action="compute_pool.delete").count() == 1


def test_a_pool_is_granted_to_a_tenant_once(platform_admin):
    grant = factories.PoolGrantFactory()
    with pytest.raises(errors.PoolGrantExistsError) as caught:
        services.pool_grant_create(actor=platform_admin, pool=grant.pool, tenant=grant.tenant)
    assert caught.value.field == "tenant"
    assert PoolGrant.objects.count() == 1


def test_a_grant_share_caps_what_the_tenant_may_hold(platform_admin):
    deployable = make_deployable()
    grant = PoolGrant.objects.get(tenant=deployable.tenant)
    services.pool_grant_update(actor=platform_admin, grant=grant, max_compute_units=3)
    task_create(actor=deployable.member, **deployable.task_fields(compute_units_per_instance=2))
    with pytest.raises(errors.PoolGrantShareExceededError):
        task_create(actor=deployable.member, **deployable.task_fields(name="more", compute_units_per_instance=2))
    entry = AuditEntry.objects.get(action="pool_grant.update")
    assert (entry.tenant, entry.before, entry.after) == (
        deployable.tenant,
        {"max_compute_units": None},
        {"max_compute_units": 3},
    )


@pytest.mark.parametrize(("share", "refused"), [(5, True), (6, False), (None, False)])
def test_a_share_may_not_drop_below_what_the_tenant_holds(platform_admin, share, refused):
    grant = factories.PoolGrantFactory(max_compute_units=50)
    factories.TaskFactory(tenant=grant.tenant, compute_pool=grant.pool, compute_units_per_instance=3, instances=2)
    factories.TaskFactory(compute_pool=grant.pool, compute_units_per_instance=9)  # another tenant's
    if refused:
        with pytest.raises(errors.PoolGrantShareBelowUseError):
            services.pool_grant_update(actor=platform_admin, grant=grant, max_compute_units=share)
    else:
        services.pool_grant_update(actor=platform_admin, grant=grant, max_compute_units=share)
    assert PoolGrant.objects.get(pk=grant.pk).max_compute_units == (50 if refused else share)


def test_a_grant_is_not_withdrawn_while_the_tenant_has_tasks_in_the_pool(platform_admin):
    grant = factories.PoolGrantFactory()
    task = factories.TaskFactory(tenant=grant.tenant, compute_pool=grant.pool, desired_state="stopped")
    with pytest.raises(errors.PoolGrantInUseError):
        services.pool_grant_delete(actor=platform_admin, grant=grant)
    task.delete()
    services.pool_grant_delete(actor=platform_admin, grant=grant)
    assert not PoolGrant.objects.exists()
    assert AuditEntry.objects.get(action="pool_grant.delete").tenant == grant.tenant
