"""Pool capacity under concurrent requests: an admin shrinking a pool while tenants deploy onto it. Whatever
the interleaving, the tasks never hold more than the capacity, and every refusal is a rule's 400."""

from __future__ import annotations

import pytest

from compute_pools.models import ComputePool
from inference_jobs.selectors import pool_used_compute_units
from tests import factories
from tests.conftest import api_client_for, make_deployable
from tests.helpers import race


@pytest.mark.django_db(transaction=True)
def test_shrinking_a_pool_while_tasks_are_created_never_overshoots():
    pool = factories.ComputePoolFactory(capacity_compute_units=12)
    deployables = [make_deployable(f"racer-{index}", pool=pool) for index in range(6)]
    admin = api_client_for(factories.PlatformAdminFactory())

    def create(deployable):
        client, payload = api_client_for(deployable.member), deployable.api_payload(compute_units_per_instance=2)
        return lambda: client.post("/api/v1/tasks/", payload, format="json")

    def shrink():
        return admin.patch(f"/api/v1/compute-pools/{pool.slug}/", {"capacity_compute_units": 5}, format="json")

    results = race([*(create(deployable) for deployable in deployables), shrink])

    allowed = {(201, None), (200, None), (400, "pool_capacity_exceeded"), (400, "pool_capacity_below_use")}
    assert set(results) <= allowed, results
    pool = ComputePool.objects.get(pk=pool.pk)
    assert pool_used_compute_units(pool) <= pool.capacity_compute_units
    shrunk = results[-1] == (200, None)
    assert pool.capacity_compute_units == (5 if shrunk else 12)
