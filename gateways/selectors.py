from __future__ import annotations

from gateways.models import Gateway, GatewayPort


def gateway_allocated_ports(gateway: Gateway) -> set[int]:
    return set(GatewayPort.objects.filter(gateway=gateway).values_list("port", flat=True))


def gateway_free_ports(gateway: Gateway) -> list[int]:
    """The gateway's unallocated ports, lowest first."""
    allocated = gateway_allocated_ports(gateway)
    return [port for port in range(gateway.port_range_start, gateway.port_range_end + 1) if port not in allocated]
