"""Gateways and their ports. A port is allocated under the gateway's row lock, so two tasks created at
once can never take the same port or a 17th one."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from controlplane.errors import (
    GatewayInUseError,
    GatewayPortsExhaustedError,
    GatewayRangeExcludesAllocatedPortsError,
)
from controlplane.services import pick, slugged_create
from gateways.models import Gateway, GatewayPort
from gateways.selectors import gateway_allocated_ports, gateway_free_ports
from tenancy.audit import audit_record, audit_snapshot

GATEWAY_FIELDS = ("name", "description", "address", "scheme", "port_range_start", "port_range_end", "is_active")


def gateway_create(*, actor, slug: str, **fields: Any) -> Gateway:
    """A new gateway; its port range holds 1 to 16 ports (SPEC rule 2, also a database check)."""
    gateway = Gateway(slug=slug, **pick(fields, GATEWAY_FIELDS))
    return slugged_create(gateway, actor=actor, action="gateway.create")


def gateway_update(*, actor, gateway: Gateway, **fields: Any) -> Gateway:
    """Change a gateway. Its range may move or shrink only around the ports its tasks hold: the check runs
    under the gateway's row lock, which port allocation takes too."""
    with transaction.atomic():
        gateway = Gateway.objects.select_for_update().get(pk=gateway.pk)
        before = audit_snapshot(gateway)
        for key in GATEWAY_FIELDS:
            if key in fields:
                setattr(gateway, key, fields[key])
        gateway.full_clean(validate_unique=False)
        outside = sorted(
            port
            for port in gateway_allocated_ports(gateway)
            if not gateway.port_range_start <= port <= gateway.port_range_end
        )
        if outside:
            raise GatewayRangeExcludesAllocatedPortsError(
                f"Ports {', '.join(map(str, outside))} are allocated to tasks and must stay in the range."
            )
        gateway.save()
        audit_record(actor=actor, action="gateway.update", obj=gateway, before=before, after=audit_snapshot(gateway))
    return gateway


def gateway_delete(*, actor, gateway: Gateway) -> None:
    """Refused while tasks (stopped ones too) are published through the gateway."""
    with transaction.atomic():
        gateway = Gateway.objects.select_for_update().get(pk=gateway.pk)
        if gateway.tasks.exists():
            raise GatewayInUseError(f"Gateway '{gateway.slug}' still publishes tasks; delete or move them first.")
        audit_record(actor=actor, action="gateway.delete", obj=gateway, before=audit_snapshot(gateway))
        gateway.delete()


def gateway_port_allocate(*, gateway: Gateway, task) -> GatewayPort:
    """Give ``task`` the lowest free port of ``gateway``. The caller holds the gateway's row lock (taken in
    task admission), so the free list cannot change under it."""
    free = gateway_free_ports(gateway)
    if not free:
        raise GatewayPortsExhaustedError(
            f"Gateway '{gateway.slug}' has all {gateway.port_count} ports in use; choose another gateway."
        )
    return GatewayPort.objects.create(gateway=gateway, port=free[0], task=task)
