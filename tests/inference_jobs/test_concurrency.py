"""Limits that count hold under concurrent requests: 40 creates released at once through the API, each on
its own thread and database connection, race for the last 3 slots. Exactly 3 win; the others get the
rule's error, never a 500, and the count never overshoots."""

from __future__ import annotations

from collections import Counter

import pytest

from gateways.models import GatewayPort
from inference_jobs.models import InferenceTask
from inference_jobs.services import task_create
from tests import factories
from tests.conftest import api_client_for, make_deployable
from tests.helpers import race
from tests.inference_jobs.conftest import seed_tasks

RACERS = 40
TENANTS = 8


def tenants(*, shared_gateway=None) -> list:
    """Racers come from 8 tenants with pools of their own, so that no tenant or pool row lock serialises them
    by accident: only the lock of the rule under test can."""
    return [make_deployable(f"racer-tenant-{i}", gateway=shared_gateway) for i in range(TENANTS)]


def race_creates(entries: list[tuple]) -> list[tuple[int, str | None]]:
    """POST every (deployable, payload) at the same moment, one thread each, as that deployable's member."""
    clients = [api_client_for(deployable.member) for deployable, _ in entries]
    return race(
        [
            lambda client=client, payload=payload: client.post("/api/v1/tasks/", payload, format="json")
            for client, (_, payload) in zip(clients, entries, strict=True)
        ]
    )


def spread(deployables: list) -> list[tuple]:
    return [
        (deployables[i % len(deployables)], deployables[i % len(deployables)].api_payload(name=f"racer-{i}"))
        for i in range(RACERS)
    ]


@pytest.mark.django_db(transaction=True)
def test_40_creates_racing_for_the_last_3_platform_slots():
    racers = tenants()
    seed_tasks(497)
    results = race_creates(spread(racers))

    assert Counter(results) == Counter({(201, None): 3, (400, "platform_task_limit"): RACERS - 3})
    assert InferenceTask.objects.count() == 500


@pytest.mark.django_db(transaction=True)
def test_40_creates_racing_for_the_last_3_ports_of_a_gateway():
    gateway = factories.GatewayFactory()
    racers = tenants(shared_gateway=gateway)
    factories.TaskFactory.create_batch(13, gateway=gateway)
    results = race_creates(spread(racers))

    assert Counter(results) == Counter({(201, None): 3, (400, "gateway_ports_exhausted"): RACERS - 3})
    ports = list(GatewayPort.objects.filter(gateway=gateway).values_list("port", flat=True))
    assert sorted(ports) == list(range(30000, 30016))


@pytest.mark.django_db(transaction=True)
def test_40_creates_racing_for_the_last_compute_units_of_a_tenant_quota():
    deployable = make_deployable()
    deployable.tenant.max_compute_units = 6
    deployable.tenant.save()
    results = race_creates([(deployable, deployable.api_payload(name=f"racer-{i}")) for i in range(RACERS)])

    assert Counter(results) == Counter({(201, None): 3, (400, "tenant_quota_compute_units"): RACERS - 3})
    assert sum(task.compute_units for task in InferenceTask.objects.all()) == 6


@pytest.mark.django_db(transaction=True)
def test_40_creates_with_one_name_yield_one_task():
    deployable = make_deployable()
    results = race_creates([(deployable, deployable.api_payload(name="same")) for _ in range(RACERS)])

    assert Counter(results) == Counter({(201, None): 1, (400, "task_name_taken"): RACERS - 1})


@pytest.mark.django_db(transaction=True)
def test_40_starts_racing_for_the_last_compute_units_of_a_tenant_quota():
    """Starting a stopped task takes no platform lock; the tenant and pool row locks alone keep the quota."""
    deployable = make_deployable()
    deployable.tenant.max_compute_units = 6
    deployable.tenant.save()
    stopped = factories.TaskFactory.create_batch(
        RACERS, tenant=deployable.tenant, model=deployable.model, compute_pool=deployable.pool, desired_state="stopped"
    )
    clients = [api_client_for(deployable.member) for _ in stopped]
    results = race(
        [
            lambda client=client, task=task: client.post(f"/api/v1/tasks/{task.pk}/start/")
            for client, task in zip(clients, stopped, strict=True)
        ]
    )

    assert Counter(results) == Counter({(200, None): 3, (400, "tenant_quota_compute_units"): RACERS - 3})
    assert InferenceTask.objects.filter(desired_state="running").count() == 3


@pytest.mark.django_db(transaction=True)
def test_every_task_write_at_once_on_one_task_never_deadlocks():
    """Scale and start lock tenant, pool, then the task; stop, update, rotate and delete lock the task and then
    write rows naming the tenant. Sent together, none may end in a 500 (a deadlock was one, found by the fuzz)."""
    d = make_deployable("acme")
    task = task_create(actor=d.member, **d.task_fields())
    admin, member = api_client_for(factories.PlatformAdminFactory()), api_client_for(d.member)
    url = f"/api/v1/tasks/{task.pk}"
    requests = [
        lambda: admin.post(f"{url}/scale/", {"instances": 1, "compute_units_per_instance": 3}, format="json"),
        lambda: member.post(f"{url}/stop/"),
        lambda: admin.post(f"{url}/scale/", {"instances": 2, "compute_units_per_instance": 1}, format="json"),
        lambda: member.post(f"{url}/start/"),
        lambda: member.post(f"{url}/update-image/"),
        lambda: member.patch(f"{url}/", {"temperature": 0.3}, format="json"),
        lambda: admin.post(f"{url}/rotate-ingest-token/"),
        lambda: member.post(f"{url}/scale/", {"instances": 1}, format="json"),
    ]
    for _ in range(3):
        statuses = [status for status, _ in race(requests)]
        assert all(0 < status < 500 for status in statuses), statuses
