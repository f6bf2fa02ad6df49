"""The compute pool console pages: a platform admin's list, create, edit and detail with grants. Tenant users
find none of them (404); refused rules show on their field with the API's code and write nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from compute_pools.models import ComputePool, PoolGrant
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
def pool(db):
    return factories.ComputePoolFactory(
        slug="a100", name="A100 pool", capacity_compute_units=16, node_selector={"aicp.io/pool": "a100"}
    )


POOL_FORM = {
    "slug": "mr-v100", "name": "Zhikai pool", "accelerator_type": "iluvatar-mr-v100", "capacity_compute_units": 8,
    "node_selector": "aicp.io/pool=zhikai\nzone = east", "tolerations": "",
}  # fmt: skip


def test_the_pool_list_shows_capacity_used_and_free(admin_client, pool):
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=2, instances=3)

    response = admin_client.get(reverse("console:pool-list"))

    assert response.status_code == 200
    pool_row = row(response, 'data-pool="a100"')
    assert "6 / 16" in pool_row and ">10<" in pool_row  # used / capacity, free
    assert "NVIDIA" in pool_row and "80 GiB" in pool_row and "aicp.io/pool=a100" in pool_row


def test_the_pool_list_runs_the_same_queries_for_3_or_30_pools(admin_client):
    def fill(total: int) -> None:
        factories.ComputePoolFactory.create_batch(total - ComputePool.objects.count())

    counts = page_query_counts(admin_client, reverse("console:pool-list"), fill)
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    "name, args",
    [("pool-list", []), ("pool-create", []), ("pool-detail", ["a100"]), ("pool-edit", ["a100"])],
)
def test_pool_pages_do_not_exist_for_tenant_users_even_with_a_grant(client, pool, name, args):
    tenant = factories.TenantFactory(slug="acme")
    factories.PoolGrantFactory(pool=pool, tenant=tenant)
    client.force_login(member_of(tenant, Role.ADMIN))

    assert client.get(reverse(f"console:{name}", args=args)).status_code == 404


def test_a_tenant_admin_cannot_grant_or_revoke(client, pool):
    tenant = factories.TenantFactory(slug="acme")
    grant = factories.PoolGrantFactory(pool=pool, tenant=tenant)
    client.force_login(member_of(tenant, Role.ADMIN))

    assert client.post(reverse("console:pool-detail", args=["a100"]), {"tenant": "acme"}).status_code == 404
    assert client.post(reverse("console:pool-grant-delete", args=["a100", grant.pk])).status_code == 404
    assert PoolGrant.objects.filter(pk=grant.pk).exists()


def test_a_platform_admin_creates_a_pool_with_node_labels(admin_client, platform_admin):
    response = admin_client.post(reverse("console:pool-create"), POOL_FORM)

    assert response.status_code == 302 and response["Location"] == reverse("console:pool-detail", args=["mr-v100"])
    created = ComputePool.objects.get(slug="mr-v100")
    assert created.node_selector == {"aicp.io/pool": "zhikai", "zone": "east"}
    assert created.tolerations == []
    assert created.memory_per_card_gib == created.accelerator_type.memory_per_card_gib  # left empty: the card's
    assert AuditEntry.objects.filter(action="compute_pool.create", actor=platform_admin).exists()


def test_malformed_node_labels_and_tolerations_are_field_errors(admin_client):
    form = {**POOL_FORM, "node_selector": "no equals sign", "tolerations": '{"key": "gpu"}'}

    response = admin_client.post(reverse("console:pool-create"), form)

    assert field_error_codes(response, "node_selector") == ["invalid"]
    assert field_error_codes(response, "tolerations") == ["invalid"]
    assert not ComputePool.objects.filter(slug="mr-v100").exists()


def test_a_taken_pool_id_shows_the_apis_code(admin_client, pool):
    response = admin_client.post(reverse("console:pool-create"), {**POOL_FORM, "slug": "a100"})
    assert field_error_codes(response, "slug") == ["slug_taken"]


def test_capacity_below_what_tasks_hold_is_refused_on_the_capacity_field_as_in_the_api(
    admin_client, api_as, platform_admin, pool
):
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=4, instances=2)
    form = {**POOL_FORM, "accelerator_type": "nvidia-gpu", "capacity_compute_units": 7, "memory_per_card_gib": 80}

    response = admin_client.post(reverse("console:pool-edit", args=["a100"]), form)

    assert response.status_code == 200
    api = api_as(platform_admin).patch("/api/v1/compute-pools/a100/", {"capacity_compute_units": 7}, format="json")
    assert field_error_codes(response, "capacity_compute_units") == [api.json()["code"]] == ["pool_capacity_below_use"]
    assert ComputePool.objects.get(slug="a100").capacity_compute_units == 16


def test_a_platform_admin_edits_a_pool(admin_client, pool):
    form = {**POOL_FORM, "accelerator_type": "nvidia-gpu", "capacity_compute_units": 32, "memory_per_card_gib": 40}

    response = admin_client.post(reverse("console:pool-edit", args=["a100"]), form)

    assert response.status_code == 302
    pool.refresh_from_db()
    assert (pool.capacity_compute_units, pool.memory_per_card_gib, pool.name) == (32, 40, "Zhikai pool")
    assert AuditEntry.objects.get(action="compute_pool.update").after["capacity_compute_units"] == 32


def test_the_edit_form_starts_from_the_pools_values(admin_client, pool):
    page = admin_client.get(reverse("console:pool-edit", args=["a100"])).content.decode()
    assert 'value="16"' in page and "aicp.io/pool=a100" in page


def test_the_detail_page_shows_grants_with_use_and_the_observed_nodes(admin_client, pool):
    acme = factories.TenantFactory(slug="acme")
    factories.PoolGrantFactory(pool=pool, tenant=acme, max_compute_units=8)
    factories.TaskFactory(tenant=acme, compute_pool=pool, compute_units_per_instance=2, instances=2)
    pool.observed_nodes = [{"name": "gpu-node-1", "allocatable": 8, "ready": True}]
    pool.inventory_at = timezone.now()
    pool.save()

    response = admin_client.get(reverse("console:pool-detail", args=["a100"]))

    assert response.status_code == 200
    assert "4 / 8" in row(response, 'data-grant="acme"')
    page = response.content.decode()
    assert "gpu-node-1" in page and '<span class="badge ok">ready</span>' in page


def test_a_platform_admin_grants_a_pool_with_a_share(admin_client, platform_admin, pool):
    factories.TenantFactory(slug="acme")

    response = admin_client.post(
        reverse("console:pool-detail", args=["a100"]), {"tenant": "acme", "max_compute_units": 4}
    )

    assert response.status_code == 302
    grant = PoolGrant.objects.get(pool=pool, tenant__slug="acme")
    assert grant.max_compute_units == 4
    assert AuditEntry.objects.filter(action="pool_grant.create", actor=platform_admin).exists()


def test_granting_twice_is_refused_on_the_tenant_field(admin_client, pool):
    factories.PoolGrantFactory(pool=pool, tenant=factories.TenantFactory(slug="acme"))

    response = admin_client.post(reverse("console:pool-detail", args=["a100"]), {"tenant": "acme"})

    assert response.status_code == 200
    assert field_error_codes(response, "tenant") == ["pool_grant_exists"]
    assert PoolGrant.objects.filter(pool=pool).count() == 1


def test_a_share_below_use_is_refused_on_its_field(admin_client, pool):
    acme = factories.TenantFactory(slug="acme")
    grant = factories.PoolGrantFactory(pool=pool, tenant=acme)
    factories.TaskFactory(tenant=acme, compute_pool=pool, compute_units_per_instance=4)

    response = admin_client.post(reverse("console:pool-grant-edit", args=["a100", grant.pk]), {"max_compute_units": 2})

    assert field_error_codes(response, "max_compute_units") == ["pool_grant_share_below_use"]
    grant.refresh_from_db()
    assert grant.max_compute_units is None


def test_revoking_a_grant_in_use_is_refused_and_an_idle_one_goes(admin_client, pool):
    busy = factories.PoolGrantFactory(pool=pool, tenant=factories.TenantFactory(slug="busy"))
    factories.TaskFactory(tenant=busy.tenant, compute_pool=pool)
    idle = factories.PoolGrantFactory(pool=pool, tenant=factories.TenantFactory(slug="idle"))

    refused = admin_client.post(reverse("console:pool-grant-delete", args=["a100", busy.pk]), follow=True)
    assert 'data-tags="code-pool_grant_in_use"' in refused.content.decode()
    assert PoolGrant.objects.filter(pk=busy.pk).exists()

    assert admin_client.post(reverse("console:pool-grant-delete", args=["a100", idle.pk])).status_code == 302
    assert not PoolGrant.objects.filter(pk=idle.pk).exists()
    assert AuditEntry.objects.filter(action="pool_grant.delete").count() == 1
