from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from gateways.models import Gateway, GatewayPort
from tenancy.permissions import user_can


def gateway_allocated_ports(gateway: Gateway) -> set[int]:
    return set(GatewayPort.objects.filter(gateway=gateway).values_list("port", flat=True))


def gateway_free_ports(gateway: Gateway) -> list[int]:
    """The gateway's unallocated ports, lowest first."""
    allocated = gateway_allocated_ports(gateway)
    return [port for port in range(gateway.port_range_start, gateway.port_range_end + 1) if port not in allocated]


def gateway_list_queryset() -> QuerySet[Gateway]:
    """Gateways annotated with ``ports_used`` and ``ports_free``, one subquery rather than one query per row."""
    used = (
        GatewayPort.objects.filter(gateway=OuterRef("pk"))
        .order_by()
        .values("gateway")
        .annotate(total=Count("id"))
        .values("total")
    )
    return Gateway.objects.annotate(ports_used=Coalesce(Subquery(used, output_field=IntegerField()), 0)).annotate(
        ports_free=F("port_range_end") - F("port_range_start") + 1 - F("ports_used")
    )


@dataclass(frozen=True)
class PortSlot:
    """One port of a gateway's range. The task's details are filled only for a caller who may see that
    task, so a tenant user learns that a port is taken but not by whom."""

    port: int
    allocated: bool
    task_id: int | None = None
    task_name: str | None = None
    tenant: str | None = None


def gateway_port_slots(gateway: Gateway, user) -> list[PortSlot]:
    """Every port of the range, lowest first, with its allocation as far as ``user`` may see it."""
    allocations = {
        allocation.port: allocation
        for allocation in GatewayPort.objects.filter(gateway=gateway).select_related("task__tenant")
    }
    slots = []
    for port in range(gateway.port_range_start, gateway.port_range_end + 1):
        allocation = allocations.get(port)
        if allocation is None:
            slots.append(PortSlot(port=port, allocated=False))
        elif user_can(user, "view", allocation.task.tenant_id):
            task = allocation.task
            slots.append(PortSlot(port, True, task_id=task.pk, task_name=task.name, tenant=task.tenant.slug))
        else:
            slots.append(PortSlot(port=port, allocated=True))
    return slots
