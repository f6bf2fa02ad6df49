"""Gateway services: at most 16 ports, and a range never moves away from the ports tasks hold."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from controlplane import errors
from gateways import services
from gateways.models import Gateway
from tenancy.models import AuditEntry
from tests import factories

pytestmark = pytest.mark.django_db

FIELDS = {"name": "Edge", "address": "edge.example.com"}


@pytest.mark.parametrize(("end", "accepted"), [(30014, True), (30015, True), (30016, False)])
def test_a_gateway_has_at_most_16_ports(platform_admin, end, accepted):
    if accepted:
        gateway = services.gateway_create(
            actor=platform_admin, slug="edge", port_range_start=30000, port_range_end=end, **FIELDS
        )
        assert gateway.port_count == end - 30000 + 1
        return
    with pytest.raises(ValidationError) as caught:
        services.gateway_create(actor=platform_admin, slug="edge", port_range_start=30000, port_range_end=end, **FIELDS)
    assert caught.value.message_dict == {
        "port_range_end": ["A gateway has at most 16 ports; 30000-30016 would have 17."]
    }
    assert not Gateway.objects.exists()


def test_a_range_that_ends_before_it_starts_is_refused(platform_admin):
    with pytest.raises(ValidationError) as caught:
        services.gateway_create(actor=platform_admin, slug="edge", port_range_start=200, port_range_end=100, **FIELDS)
    assert "port_range_end" in caught.value.message_dict


def test_the_database_refuses_a_17_port_range_even_past_the_service():
    with pytest.raises(IntegrityError):
        factories.GatewayFactory(port_range_start=1000, port_range_end=1016)


def test_a_taken_gateway_slug_is_refused(platform_admin):
    factories.GatewayFactory(slug="edge")
    with pytest.raises(errors.SlugTakenError):
        services.gateway_create(actor=platform_admin, slug="edge", port_range_start=1, port_range_end=2, **FIELDS)


def test_a_range_may_move_around_its_allocated_ports_but_not_away_from_them(platform_admin):
    gateway = factories.GatewayFactory(port_range_start=30000, port_range_end=30015)
    factories.TaskFactory(gateway=gateway, port=30003)
    services.gateway_update(actor=platform_admin, gateway=gateway, port_range_start=29990, port_range_end=30005)
    with pytest.raises(errors.GatewayRangeExcludesAllocatedPortsError) as caught:
        services.gateway_update(actor=platform_admin, gateway=gateway, port_range_start=30004, port_range_end=30010)
    assert "30003" in caught.value.message
    gateway.refresh_from_db()
    assert (gateway.port_range_start, gateway.port_range_end) == (29990, 30005)
    entry = AuditEntry.objects.get(action="gateway.update")
    assert entry.before == {"port_range_start": 30000, "port_range_end": 30015}


def test_growing_a_range_past_16_ports_is_refused(platform_admin):
    gateway = factories.GatewayFactory(port_range_start=30000, port_range_end=30015)
    with pytest.raises(ValidationError) as caught:
        services.gateway_update(actor=platform_admin, gateway=gateway, port_range_end=30016)
    assert "port_range_end" in caught.value.message_dict


def test_a_gateway_publishing_tasks_is_not_deleted(platform_admin):
    task = factories.TaskFactory(desired_state="stopped")
    with pytest.raises(errors.GatewayInUseError):
        services.gateway_delete(actor=platform_admin, gateway=task.gateway)
    idle = factories.GatewayFactory()
    services.gateway_delete(actor=platform_admin, gateway=idle)
    assert list(Gateway.objects.all()) == [task.gateway]
    assert AuditEntry.objects.get(action="gateway.delete").object_repr == idle.slug
