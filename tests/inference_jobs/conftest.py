from __future__ import annotations

from gateways.constants import MAX_PORTS_PER_GATEWAY
from gateways.models import GatewayPort
from inference_jobs.models import InferenceTask
from tests import factories


def seed_tasks(count: int, *, runtime_image_version=None) -> None:
    """``count`` tasks of one bulk tenant, each with a port, in a handful of queries: the fill for tests at
    the platform's 500-task boundary. Admission itself is exercised by the tests, not here."""
    if count == 0:
        return
    tenant = factories.TenantFactory(slug="bulk", max_tasks=10_000, max_compute_units=100_000)
    model = factories.ModelFactory(tenant=tenant)
    pool = factories.ComputePoolFactory()
    version = runtime_image_version or factories.RuntimeImageVersionFactory()
    gateways = factories.GatewayFactory.create_batch(-(-count // MAX_PORTS_PER_GATEWAY))
    tasks = InferenceTask.objects.bulk_create(
        InferenceTask(
            tenant=tenant,
            name=f"bulk-{index}",
            model=model,
            mode="normal",
            compute_pool=pool,
            gateway=gateways[index // MAX_PORTS_PER_GATEWAY],
            compute_units_per_instance=1,
            runtime_image_version=version,
        )
        for index in range(count)
    )
    GatewayPort.objects.bulk_create(
        GatewayPort(gateway=task.gateway, port=task.gateway.port_range_start + index % MAX_PORTS_PER_GATEWAY, task=task)
        for index, task in enumerate(tasks)
    )
