"""The gateway console pages: a platform admin's list, create, edit and the port-slot grid. Tenant users find
none of them (404); the 16-port limit is refused on the port-range field with the API's code."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from gateways.models import Gateway
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tests import factories
from tests.conftest import member_of
from tests.helpers import field_error_codes, page_query_counts, row

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, platform_admin):
    client.force_login(platform_admin)
    return client


@pytest.fixture
def edge(db):
    return factories.GatewayFactory(slug="edge", name="Edge", address="gw.example.com")


GATEWAY_FORM = {
    "slug": "lan", "name": "LAN gateway", "address": "10.0.0.5", "scheme": "http", "port_range_start": 30000,
    "port_range_end": 30015, "is_active": "on",
}  # fmt: skip


def test_the_gateway_list_shows_address_range_and_ports_used(admin_client, edge):
    factories.TaskFactory.create_batch(3, gateway=edge)

    response = admin_client.get(reverse("console:gateway-list"))

    assert response.status_code == 200
    edge_row = row(response, 'data-gateway="edge"')
    assert "gw.example.com" in edge_row and "30000–30015" in edge_row
    assert "3 / 16" in edge_row and ">13<" in edge_row  # used / ports, free


def test_the_gateway_list_runs_the_same_queries_for_3_or_30_gateways(admin_client):
    def fill(total: int) -> None:
        factories.GatewayFactory.create_batch(total - Gateway.objects.count())

    counts = page_query_counts(admin_client, reverse("console:gateway-list"), fill)
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    "name, args",
    [("gateway-list", []), ("gateway-create", []), ("gateway-detail", ["edge"]), ("gateway-edit", ["edge"])],
)
def test_gateway_pages_do_not_exist_for_tenant_users(client, edge, name, args):
    client.force_login(member_of(factories.TenantFactory(), Role.ADMIN))
    assert client.get(reverse(f"console:{name}", args=args)).status_code == 404


def test_a_tenant_admin_cannot_edit_a_gateway(client, edge):
    client.force_login(member_of(factories.TenantFactory(), Role.ADMIN))
    response = client.post(reverse("console:gateway-edit", args=["edge"]), {**GATEWAY_FORM, "is_active": ""})
    assert response.status_code == 404
    assert Gateway.objects.get(slug="edge").is_active


def test_the_detail_page_shows_16_slots_with_each_taken_ports_task_and_tenant(admin_client, edge):
    acme = factories.TenantFactory(slug="acme")
    chat = factories.TaskFactory(tenant=acme, name="chat", gateway=edge, port=30003)
    factories.TaskFactory(gateway=edge, port=30000)

    response = admin_client.get(reverse("console:gateway-detail", args=["edge"]))

    assert response.status_code == 200
    page = response.content.decode()
    assert len(re.findall(r'<div class="slot(?: taken)?" data-port="\d+"', page)) == 16
    assert re.findall(r'<div class="slot taken" data-port="(\d+)"', page) == ["30000", "30003"]
    taken = re.search(r'data-port="30003"(.*?)</div>\s*</div>', page, re.DOTALL).group(1)
    assert reverse("console:task-detail", args=[chat.pk]) in taken and "chat" in taken and "acme" in taken
    free = re.search(r'<div class="slot" data-port="30001">(.*?)</div>\s*</div>', page, re.DOTALL).group(1)
    assert "free" in free


def test_a_platform_admin_creates_a_gateway(admin_client, platform_admin):
    response = admin_client.post(reverse("console:gateway-create"), GATEWAY_FORM)

    assert response.status_code == 302 and response["Location"] == reverse("console:gateway-detail", args=["lan"])
    gateway = Gateway.objects.get(slug="lan")
    assert (gateway.address, gateway.port_count, gateway.is_active) == ("10.0.0.5", 16, True)
    assert AuditEntry.objects.filter(action="gateway.create", actor=platform_admin).exists()


def test_a_17_port_gateway_is_refused_on_the_port_range_with_the_apis_code(admin_client, api_as, platform_admin):
    form = {**GATEWAY_FORM, "port_range_end": 30016}

    response = admin_client.post(reverse("console:gateway-create"), form)

    assert response.status_code == 200
    api = api_as(platform_admin).post("/api/v1/gateways/", {**form, "is_active": True}, format="json")
    assert api.status_code == 400 and "port_range_end" in api.json()["fields"]
    assert field_error_codes(response, "port_range_end") == [api.json()["code"]] == ["invalid"]
    assert "at most 16 ports" in response.content.decode()
    assert not Gateway.objects.exists()


def test_a_16_port_gateway_is_the_largest_accepted(admin_client):
    assert (
        admin_client.post(reverse("console:gateway-create"), {**GATEWAY_FORM, "port_range_end": 30015}).status_code
        == 302
    )
    assert Gateway.objects.get(slug="lan").port_count == 16


def test_a_taken_gateway_id_shows_the_apis_code(admin_client, edge):
    response = admin_client.post(reverse("console:gateway-create"), {**GATEWAY_FORM, "slug": "edge"})
    assert field_error_codes(response, "slug") == ["slug_taken"]


def test_a_range_that_leaves_out_a_taken_port_is_refused_and_changes_nothing(admin_client, edge):
    factories.TaskFactory(gateway=edge, port=30010)
    form = {**GATEWAY_FORM, "port_range_start": 30000, "port_range_end": 30005}

    response = admin_client.post(reverse("console:gateway-edit", args=["edge"]), form)

    assert field_error_codes(response, "port_range_start") == ["gateway_range_excludes_allocated_ports"]
    assert Gateway.objects.get(slug="edge").port_range_end == 30015


def test_a_platform_admin_deactivates_a_gateway(admin_client, edge):
    form = {**GATEWAY_FORM}
    del form["is_active"]  # an unticked checkbox is not sent

    response = admin_client.post(reverse("console:gateway-edit", args=["edge"]), form)

    assert response.status_code == 302
    edge.refresh_from_db()
    assert (edge.is_active, edge.address) == (False, "10.0.0.5")
    assert AuditEntry.objects.get(action="gateway.update").after["is_active"] is False
