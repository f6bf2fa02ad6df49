"""The compute-pool API: platform admins build, tenant users see what is granted to them and what is left."""

from __future__ import annotations

import pytest

from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from tenancy.choices import Role
from tenancy.models import AuditEntry
from tests import factories
from tests.conftest import member_of
from tests.helpers import list_query_counts

pytestmark = pytest.mark.django_db

POOL = {
    "slug": "a100",
    "name": "A100 pool",
    "accelerator_type": "nvidia-gpu",
    "capacity_compute_units": 16,
    "node_selector": {"aicp.io/pool": "a100"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture
def tenant():
    return factories.TenantFactory(slug="acme")


# Accelerator types


def test_everyone_reads_accelerator_types_and_only_platform_admins_write(api_as, platform_admin, tenant):
    member = api_as(member_of(tenant, Role.ADMIN))
    slugs = {t["slug"] for t in member.get("/api/v1/accelerator-types/").json()["results"]}
    assert {"nvidia-gpu", "iluvatar-mr-v100", "iluvatar-bi-v100", "cpu"} <= slugs
    patch = {"kubernetes_resource_name": "iluvatar.ai/vgpu"}
    assert member.patch("/api/v1/accelerator-types/cpu/", patch, format="json").status_code == 403

    admin = api_as(platform_admin)
    updated = admin.patch("/api/v1/accelerator-types/iluvatar-bi-v100/", patch, format="json")
    assert updated.status_code == 200 and updated.json()["kubernetes_resource_name"] == "iluvatar.ai/vgpu"
    assert updated.json()["supports_high_performance_mode"] is False


def test_a_platform_admin_adds_an_accelerator_type(api_as, platform_admin):
    payload = {"slug": "h20", "name": "NVIDIA H20", "vendor": "nvidia", "kubernetes_resource_name": "nvidia.com/gpu",
               "supports_high_performance_mode": True, "memory_per_card_gib": 96}  # fmt: skip
    response = api_as(platform_admin).post("/api/v1/accelerator-types/", payload, format="json")
    assert response.status_code == 201, response.json()
    again = api_as(platform_admin).post("/api/v1/accelerator-types/", payload, format="json")
    assert again.status_code == 400 and again.json()["code"] == "slug_taken"
    assert AcceleratorType.objects.filter(slug="h20").count() == 1


def test_listing_accelerator_types_runs_a_constant_number_of_queries(api_as, platform_admin):
    def fill(rows: int) -> None:
        for index in range(rows - AcceleratorType.objects.count()):
            AcceleratorType.objects.create(slug=f"extra-{rows}-{index}", name="x", vendor="none")

    few, many = list_query_counts(api_as(platform_admin), "/api/v1/accelerator-types/", fill, sizes=(4, 30))
    assert few == many


# Compute pools


def test_a_platform_admin_creates_a_pool(api_as, platform_admin):
    response = api_as(platform_admin).post("/api/v1/compute-pools/", POOL, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {key: body[key] for key in POOL} == POOL
    assert (body["memory_per_card_gib"], body["used_compute_units"], body["free_compute_units"]) == (80, 0, 16)
    assert AuditEntry.objects.filter(action="compute_pool.create").count() == 1


def test_bad_pool_input_is_a_field_error_not_a_500(api_as, platform_admin):
    payload = {**POOL, "accelerator_type": "tpu", "capacity_compute_units": 0, "node_selector": ["not", "a", "map"]}
    response = api_as(platform_admin).post("/api/v1/compute-pools/", payload, format="json")
    assert response.status_code == 400
    assert {"accelerator_type", "node_selector"} <= set(response.json()["fields"])
    zero = api_as(platform_admin).post("/api/v1/compute-pools/", {**POOL, "capacity_compute_units": 0}, format="json")
    assert zero.status_code == 400 and "capacity_compute_units" in zero.json()["fields"]
    assert not ComputePool.objects.exists()


def test_a_pool_shows_what_is_used_and_free(api_as, platform_admin):
    pool = factories.ComputePoolFactory(slug="a100", capacity_compute_units=16)
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=2, instances=3)
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=4, desired_state="stopped")
    body = api_as(platform_admin).get("/api/v1/compute-pools/a100/").json()
    assert (body["used_compute_units"], body["free_compute_units"]) == (6, 10)


def test_capacity_below_use_is_refused_through_the_api(api_as, platform_admin):
    pool = factories.ComputePoolFactory(slug="a100", capacity_compute_units=16)
    factories.TaskFactory(compute_pool=pool, compute_units_per_instance=4)
    client = api_as(platform_admin)
    refused = client.patch("/api/v1/compute-pools/a100/", {"capacity_compute_units": 3}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "pool_capacity_below_use"
    assert "capacity_compute_units" in refused.json()["fields"]
    allowed = client.patch("/api/v1/compute-pools/a100/", {"capacity_compute_units": 4}, format="json")
    assert allowed.status_code == 200 and allowed.json()["free_compute_units"] == 0


def test_a_pool_in_use_is_not_deleted(api_as, platform_admin):
    factories.TaskFactory(compute_pool=factories.ComputePoolFactory(slug="busy"))
    factories.ComputePoolFactory(slug="idle")
    client = api_as(platform_admin)
    busy = client.delete("/api/v1/compute-pools/busy/")
    assert busy.status_code == 400 and busy.json()["code"] == "pool_in_use"
    assert client.delete("/api/v1/compute-pools/idle/").status_code == 204
    assert list(ComputePool.objects.values_list("slug", flat=True)) == ["busy"]


def test_tenant_users_see_only_granted_pools_and_change_none(api_as, tenant):
    granted = factories.PoolGrantFactory(tenant=tenant, pool=factories.ComputePoolFactory(slug="granted")).pool
    factories.ComputePoolFactory(slug="elsewhere")
    client = api_as(member_of(tenant, Role.ADMIN))
    assert [p["slug"] for p in client.get("/api/v1/compute-pools/").json()["results"]] == ["granted"]
    assert client.get("/api/v1/compute-pools/elsewhere/").status_code == 404
    patch = {"capacity_compute_units": 99999}
    assert client.patch("/api/v1/compute-pools/granted/", patch, format="json").status_code == 403
    assert client.post("/api/v1/compute-pools/", POOL, format="json").status_code == 403
    assert ComputePool.objects.get(pk=granted.pk).capacity_compute_units == 10_000


@pytest.mark.parametrize("viewer", ["platform_admin", "tenant_member"])
def test_listing_pools_runs_a_constant_number_of_queries(api_as, platform_admin, tenant, viewer):
    user = platform_admin if viewer == "platform_admin" else member_of(tenant, Role.MEMBER)

    def fill(rows: int) -> None:
        for _ in range(rows - ComputePool.objects.count()):
            grant = factories.PoolGrantFactory(tenant=tenant)
            factories.TaskFactory(compute_pool=grant.pool)

    few, many = list_query_counts(api_as(user), "/api/v1/compute-pools/", fill)
    assert few == many


# Pool grants


def test_a_platform_admin_grants_a_pool_with_a_share(api_as, platform_admin, tenant):
    factories.ComputePoolFactory(slug="a100")
    client = api_as(platform_admin)
    payload = {"pool": "a100", "tenant": "acme", "max_compute_units": 8}
    response = client.post("/api/v1/pool-grants/", payload, format="json")
    assert response.status_code == 201, response.json()
    assert {key: response.json()[key] for key in payload} == payload and response.json()["used_compute_units"] == 0
    again = client.post("/api/v1/pool-grants/", payload, format="json")
    assert again.status_code == 400
    assert again.json()["code"] == "pool_grant_exists" and "tenant" in again.json()["fields"]
    assert PoolGrant.objects.count() == 1
    assert AuditEntry.objects.get(action="pool_grant.create").tenant == tenant


def test_a_share_below_use_and_withdrawing_a_grant_in_use_are_refused(api_as, platform_admin, tenant):
    grant = factories.PoolGrantFactory(tenant=tenant)
    factories.TaskFactory(tenant=tenant, compute_pool=grant.pool, compute_units_per_instance=4)
    client = api_as(platform_admin)
    shrunk = client.patch(f"/api/v1/pool-grants/{grant.pk}/", {"max_compute_units": 3}, format="json")
    assert shrunk.status_code == 400 and shrunk.json()["code"] == "pool_grant_share_below_use"
    capped = client.patch(f"/api/v1/pool-grants/{grant.pk}/", {"max_compute_units": 4}, format="json")
    assert capped.status_code == 200 and capped.json()["used_compute_units"] == 4
    withdrawn = client.delete(f"/api/v1/pool-grants/{grant.pk}/")
    assert withdrawn.status_code == 400 and withdrawn.json()["code"] == "pool_grant_in_use"
    assert PoolGrant.objects.filter(pk=grant.pk).exists()


def test_a_grant_patch_is_partial(api_as, platform_admin, tenant):
    grant = factories.PoolGrantFactory(tenant=tenant, max_compute_units=8)
    client = api_as(platform_admin)
    unchanged = client.patch(f"/api/v1/pool-grants/{grant.pk}/", {}, format="json")
    assert unchanged.status_code == 200 and unchanged.json()["max_compute_units"] == 8
    unlimited = client.patch(f"/api/v1/pool-grants/{grant.pk}/", {"max_compute_units": None}, format="json")
    assert unlimited.status_code == 200 and unlimited.json()["max_compute_units"] is None


def test_tenant_users_read_their_own_grants_only(api_as, tenant):
    mine = factories.PoolGrantFactory(tenant=tenant)
    theirs = factories.PoolGrantFactory(tenant=factories.TenantFactory(slug="globex"))
    client = api_as(member_of(tenant, Role.ADMIN))
    assert [g["id"] for g in client.get("/api/v1/pool-grants/").json()["results"]] == [mine.pk]
    assert client.get(f"/api/v1/pool-grants/{theirs.pk}/").status_code == 404
    assert (
        client.patch(f"/api/v1/pool-grants/{mine.pk}/", {"max_compute_units": None}, format="json").status_code == 403
    )
    assert client.delete(f"/api/v1/pool-grants/{mine.pk}/").status_code == 403
    response = client.post("/api/v1/pool-grants/", {"pool": theirs.pool.slug, "tenant": "acme"}, format="json")
    assert response.status_code == 403
    assert PoolGrant.objects.count() == 2


@pytest.mark.parametrize("viewer", ["platform_admin", "tenant_member"])
def test_listing_grants_runs_a_constant_number_of_queries(api_as, platform_admin, tenant, viewer):
    user = platform_admin if viewer == "platform_admin" else member_of(tenant, Role.MEMBER)

    def fill(rows: int) -> None:
        for _ in range(rows - PoolGrant.objects.count()):
            grant = factories.PoolGrantFactory(tenant=tenant)
            factories.TaskFactory(tenant=tenant, compute_pool=grant.pool)

    few, many = list_query_counts(api_as(user), "/api/v1/pool-grants/", fill)
    assert few == many


def test_numbers_beyond_what_the_database_holds_are_field_errors(api_as, platform_admin, tenant):
    huge = 2**40
    client = api_as(platform_admin)
    pool = client.post("/api/v1/compute-pools/", {**POOL, "memory_per_card_gib": huge}, format="json")
    assert pool.status_code == 400 and "memory_per_card_gib" in pool.json()["fields"]
    factories.ComputePoolFactory(slug="a100")
    grant = client.post("/api/v1/pool-grants/", {"pool": "a100", "tenant": "acme", "max_compute_units": huge})
    assert grant.status_code == 400 and "max_compute_units" in grant.json()["fields"]
    assert not PoolGrant.objects.exists()
