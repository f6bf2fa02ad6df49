"""The gateway API: everyone reads gateways and their free ports; only platform admins see whose port is whose."""

from __future__ import annotations

import pytest

from gateways.models import Gateway
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tests import factories
from tests.conftest import member_of
from tests.helpers import list_query_counts

pytestmark = pytest.mark.django_db

GATEWAY = {
    "slug": "edge",
    "name": "Edge",
    "address": "edge.example.com",
    "scheme": "https",
    "port_range_start": 30000,
    "port_range_end": 30015,
}


def test_a_platform_admin_creates_a_gateway(api_as, platform_admin):
    response = api_as(platform_admin).post("/api/v1/gateways/", GATEWAY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {key: body[key] for key in GATEWAY} == GATEWAY
    assert (body["port_count"], body["ports_used"], body["ports_free"], body["is_active"]) == (16, 0, 16, True)
    assert AuditEntry.objects.get(action="gateway.create").after["port_range_end"] == 30015


def test_a_17_port_range_is_a_field_error_not_a_500(api_as, platform_admin):
    response = api_as(platform_admin).post("/api/v1/gateways/", {**GATEWAY, "port_range_end": 30016}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["fields"] == {"port_range_end": ["A gateway has at most 16 ports; 30000-30016 would have 17."]}
    assert not Gateway.objects.exists()


def test_out_of_range_ports_and_a_taken_slug_are_refused(api_as, platform_admin):
    client = api_as(platform_admin)
    bad = client.post("/api/v1/gateways/", {**GATEWAY, "port_range_start": 0, "port_range_end": 70000}, format="json")
    assert bad.status_code == 400 and {"port_range_start", "port_range_end"} <= set(bad.json()["fields"])
    factories.GatewayFactory(slug="edge")
    taken = client.post("/api/v1/gateways/", GATEWAY, format="json")
    assert taken.status_code == 400 and taken.json()["code"] == "slug_taken"


def test_growing_a_range_past_16_ports_through_patch_is_a_field_error(api_as, platform_admin):
    factories.GatewayFactory(slug="edge", port_range_start=30000, port_range_end=30007)
    response = api_as(platform_admin).patch("/api/v1/gateways/edge/", {"port_range_end": 30016}, format="json")
    assert response.status_code == 400 and "port_range_end" in response.json()["fields"]
    assert Gateway.objects.get(slug="edge").port_range_end == 30007


def test_shrinking_a_range_below_allocated_ports_is_refused(api_as, platform_admin):
    gateway = factories.GatewayFactory(slug="edge", port_range_start=30000, port_range_end=30015)
    factories.TaskFactory(gateway=gateway, port=30010)
    client = api_as(platform_admin)
    refused = client.patch("/api/v1/gateways/edge/", {"port_range_end": 30009}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "gateway_range_excludes_allocated_ports"
    assert "port_range_start" in refused.json()["fields"]
    shrunk = client.patch("/api/v1/gateways/edge/", {"port_range_end": 30010}, format="json")
    assert shrunk.status_code == 200
    assert (shrunk.json()["port_count"], shrunk.json()["ports_used"], shrunk.json()["ports_free"]) == (11, 1, 10)


def test_a_gateway_publishing_tasks_is_not_deleted(api_as, platform_admin):
    factories.TaskFactory(gateway=factories.GatewayFactory(slug="busy"))
    response = api_as(platform_admin).delete("/api/v1/gateways/busy/")
    assert response.status_code == 400 and response.json()["code"] == "gateway_in_use"
    factories.GatewayFactory(slug="idle")
    assert api_as(platform_admin).delete("/api/v1/gateways/idle/").status_code == 204


def test_every_signed_in_user_reads_gateways_but_only_platform_admins_write(api_as):
    factories.GatewayFactory(slug="edge")
    tenant = factories.TenantFactory()
    for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER):
        client = api_as(member_of(tenant, role))
        assert [g["slug"] for g in client.get("/api/v1/gateways/").json()["results"]] == ["edge"]
        assert client.patch("/api/v1/gateways/edge/", {"is_active": False}, format="json").status_code == 403
        assert client.delete("/api/v1/gateways/edge/").status_code == 403
        assert client.post("/api/v1/gateways/", {**GATEWAY, "slug": "mine"}, format="json").status_code == 403
    assert list(Gateway.objects.values_list("slug", "is_active")) == [("edge", True)]


def test_gateways_with_free_ports_can_be_filtered(api_as, platform_admin):
    full = factories.GatewayFactory(slug="full", port_range_start=40000, port_range_end=40000)
    factories.TaskFactory(gateway=full)
    factories.GatewayFactory(slug="roomy")
    client = api_as(platform_admin)
    assert [g["slug"] for g in client.get("/api/v1/gateways/", {"has_free_ports": "true"}).json()["results"]] == [
        "roomy"
    ]
    assert [g["slug"] for g in client.get("/api/v1/gateways/", {"has_free_ports": "false"}).json()["results"]] == [
        "full"
    ]


@pytest.fixture
def shared_gateway():
    """A four-port gateway with one task of acme on 30001 and one of globex on 30002."""
    gateway = factories.GatewayFactory(slug="edge", port_range_start=30000, port_range_end=30003)
    acme, globex = factories.TenantFactory(slug="acme"), factories.TenantFactory(slug="globex")
    mine = factories.TaskFactory(tenant=acme, gateway=gateway, name="acme-chat", port=30001)
    theirs = factories.TaskFactory(tenant=globex, gateway=gateway, name="globex-secret", port=30002)
    return gateway, mine, theirs


def test_a_platform_admin_sees_every_ports_task(api_as, platform_admin, shared_gateway):
    _, mine, theirs = shared_gateway
    slots = api_as(platform_admin).get("/api/v1/gateways/edge/ports/").json()
    assert slots == [
        {"port": 30000, "allocated": False, "task_id": None, "task_name": None, "tenant": None},
        {"port": 30001, "allocated": True, "task_id": mine.pk, "task_name": "acme-chat", "tenant": "acme"},
        {"port": 30002, "allocated": True, "task_id": theirs.pk, "task_name": "globex-secret", "tenant": "globex"},
        {"port": 30003, "allocated": False, "task_id": None, "task_name": None, "tenant": None},
    ]


def test_a_tenant_user_sees_which_ports_are_taken_but_not_by_whom(api_as, shared_gateway):
    _, mine, _ = shared_gateway
    response = api_as(member_of(mine.tenant, Role.VIEWER)).get("/api/v1/gateways/edge/ports/")
    assert response.status_code == 200
    slots = response.json()
    assert [slot["allocated"] for slot in slots] == [False, True, True, False]
    assert slots[1]["task_name"] == "acme-chat"
    assert slots[2] == {"port": 30002, "allocated": True, "task_id": None, "task_name": None, "tenant": None}
    assert "globex" not in response.content.decode()


@pytest.mark.parametrize("viewer", ["platform_admin", "tenant_viewer"])
def test_listing_gateways_runs_a_constant_number_of_queries(api_as, platform_admin, viewer):
    user = platform_admin if viewer == "platform_admin" else member_of(factories.TenantFactory(), Role.VIEWER)

    def fill(rows: int) -> None:
        for gateway in factories.GatewayFactory.create_batch(rows - Gateway.objects.count()):
            factories.TaskFactory(gateway=gateway)

    few, many = list_query_counts(api_as(user), "/api/v1/gateways/", fill)
    assert few == many
