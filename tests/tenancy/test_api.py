"""The tenancy API: tenants, memberships, users and the audit log — who may do what, and what they see."""

from __future__ import annotations

import pytest

from tenancy.choices import Role
from tenancy.models import AuditEntry, Membership, Tenant, User
from tests import factories
from tests.conftest import member_of
from tests.helpers import list_query_counts
from tests.tenancy.conftest import tenant_with_people

pytestmark = pytest.mark.django_db


# Tenants


def test_a_platform_admin_creates_a_tenant_with_quotas(api_as, platform_admin):
    payload = {"slug": "acme", "name": "Acme", "max_tasks": 5, "max_compute_units": 16, "max_tokens_per_minute": 9000}
    response = api_as(platform_admin).post("/api/v1/tenants/", payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {key: body[key] for key in payload} == payload
    assert (body["tasks_used"], body["compute_units_used"]) == (0, 0)
    assert AuditEntry.objects.filter(action="tenant.create", actor=platform_admin).count() == 1


def test_a_taken_tenant_slug_is_a_rule_error_on_slug(api_as, platform_admin, acme):
    response = api_as(platform_admin).post("/api/v1/tenants/", {"slug": "acme", "name": "Again"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "slug_taken" and "slug" in response.json()["fields"]


def test_bad_tenant_input_names_each_field(api_as, platform_admin):
    payload = {"slug": "Not A Slug", "name": "", "max_tasks": -1}
    response = api_as(platform_admin).post("/api/v1/tenants/", payload, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"slug", "name", "max_tasks"}
    assert not Tenant.objects.exists()


def test_a_tenant_shows_what_it_uses(api_as, acme):
    factories.TaskFactory(tenant=acme.tenant, compute_units_per_instance=2, instances=3)
    factories.TaskFactory(tenant=acme.tenant, compute_units_per_instance=4, desired_state="stopped")
    body = api_as(acme.viewer).get("/api/v1/tenants/acme/").json()
    assert (body["tasks_used"], body["compute_units_used"]) == (2, 6)


def test_tenant_users_read_only_their_own_tenants(api_as, acme, globex):
    client = api_as(acme.member)
    assert [t["slug"] for t in client.get("/api/v1/tenants/").json()["results"]] == ["acme"]
    assert client.get("/api/v1/tenants/globex/").status_code == 404


def test_even_a_tenant_admin_cannot_change_quotas(api_as, acme):
    client = api_as(acme.admin)
    assert client.patch("/api/v1/tenants/acme/", {"max_tasks": 1000}, format="json").status_code == 403
    assert client.post("/api/v1/tenants/", {"slug": "mine", "name": "Mine"}, format="json").status_code == 403
    assert client.delete("/api/v1/tenants/acme/").status_code == 403
    assert Tenant.objects.get(slug="acme").max_tasks == 100


def test_a_quota_below_use_is_refused_through_the_api(api_as, platform_admin, acme):
    factories.TaskFactory.create_batch(2, tenant=acme.tenant)
    response = api_as(platform_admin).patch("/api/v1/tenants/acme/", {"max_tasks": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "tenant_quota_below_use" and "max_tasks" in response.json()["fields"]
    updated = api_as(platform_admin).patch("/api/v1/tenants/acme/", {"max_tasks": 2}, format="json")
    assert updated.status_code == 200 and updated.json()["max_tasks"] == 2


def test_a_tenant_with_tasks_is_not_deleted(api_as, platform_admin, acme):
    factories.TaskFactory(tenant=acme.tenant)
    response = api_as(platform_admin).delete("/api/v1/tenants/acme/")
    assert response.status_code == 400 and response.json()["code"] == "tenant_in_use"
    assert api_as(platform_admin).delete("/api/v1/tenants/globex/").status_code == 404


def test_an_empty_tenant_is_deleted(api_as, platform_admin):
    factories.TenantFactory(slug="empty")
    assert api_as(platform_admin).delete("/api/v1/tenants/empty/").status_code == 204
    assert not Tenant.objects.filter(slug="empty").exists()


def test_listing_tenants_runs_a_constant_number_of_queries(api_as, platform_admin):
    def fill(rows: int) -> None:
        for tenant in factories.TenantFactory.create_batch(rows - Tenant.objects.count()):
            factories.TaskFactory(tenant=tenant)

    few, many = list_query_counts(api_as(platform_admin), "/api/v1/tenants/", fill)
    assert few == many


# Memberships


def test_a_tenant_admin_adds_a_member(api_as, acme):
    newcomer = factories.UserFactory(username="newcomer")
    payload = {"tenant": "acme", "user": "newcomer", "role": "viewer"}
    response = api_as(acme.admin).post("/api/v1/memberships/", payload, format="json")
    assert response.status_code == 201, response.json()
    assert {key: response.json()[key] for key in payload} == payload
    entry = AuditEntry.objects.get(action="membership.create")
    assert (entry.actor, entry.tenant) == (acme.admin, acme.tenant)
    assert Membership.objects.get(user=newcomer).role == "viewer"


def test_the_tenant_defaults_to_the_one_the_admin_manages(api_as, acme):
    factories.UserFactory(username="newcomer")
    response = api_as(acme.admin).post("/api/v1/memberships/", {"user": "newcomer"}, format="json")
    assert response.status_code == 201 and response.json()["tenant"] == "acme"
    assert response.json()["role"] == "member"


def test_members_and_viewers_cannot_manage_members(api_as, acme):
    factories.UserFactory(username="newcomer")
    target = Membership.objects.get(user=acme.viewer)
    for user in (acme.member, acme.viewer):
        client = api_as(user)
        payload = {"tenant": "acme", "user": "newcomer"}
        assert client.post("/api/v1/memberships/", payload, format="json").status_code == 403
        assert client.patch(f"/api/v1/memberships/{target.pk}/", {"role": "admin"}, format="json").status_code == 403
        assert client.delete(f"/api/v1/memberships/{target.pk}/").status_code == 403
    assert Membership.objects.filter(tenant=acme.tenant).count() == 3
    assert Membership.objects.get(pk=target.pk).role == "viewer"


def test_a_patch_is_partial_so_an_empty_one_changes_nothing(api_as, acme):
    target = Membership.objects.get(user=acme.viewer)
    response = api_as(acme.admin).patch(f"/api/v1/memberships/{target.pk}/", {}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["role"] == "viewer"
    assert not AuditEntry.objects.filter(action="membership.update").exists()


def test_members_see_their_tenants_members_only(api_as, acme, globex):
    listed = api_as(acme.viewer).get("/api/v1/memberships/").json()["results"]
    assert sorted(m["user"] for m in listed) == ["acme-admin", "acme-member", "acme-viewer"]


def test_another_tenants_memberships_answer_404(api_as, acme, globex):
    theirs = Membership.objects.get(user=globex.member)
    client = api_as(acme.admin)
    assert client.get(f"/api/v1/memberships/{theirs.pk}/").status_code == 404
    assert client.patch(f"/api/v1/memberships/{theirs.pk}/", {"role": "viewer"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/memberships/{theirs.pk}/").status_code == 404
    assert Membership.objects.get(pk=theirs.pk).role == "member"


def test_adding_into_another_tenant_is_a_field_error_on_tenant(api_as, acme, globex):
    factories.UserFactory(username="newcomer")
    response = api_as(acme.admin).post("/api/v1/memberships/", {"tenant": "globex", "user": "newcomer"}, format="json")
    assert response.status_code == 400 and "tenant" in response.json()["fields"]
    assert not Membership.objects.filter(user__username="newcomer").exists()


def test_a_duplicate_membership_and_an_unknown_user_are_refused(api_as, acme):
    client = api_as(acme.admin)
    duplicate = client.post("/api/v1/memberships/", {"tenant": "acme", "user": "acme-member"}, format="json")
    assert duplicate.status_code == 400 and duplicate.json()["code"] == "membership_exists"
    unknown = client.post("/api/v1/memberships/", {"tenant": "acme", "user": "nobody"}, format="json")
    assert unknown.status_code == 400 and "user" in unknown.json()["fields"]


def test_the_last_tenant_admin_cannot_step_down_or_leave(api_as, acme):
    own = Membership.objects.get(user=acme.admin)
    client = api_as(acme.admin)
    demoted = client.patch(f"/api/v1/memberships/{own.pk}/", {"role": "member"}, format="json")
    assert demoted.status_code == 400
    assert demoted.json()["code"] == "last_tenant_admin" and "role" in demoted.json()["fields"]
    removed = client.delete(f"/api/v1/memberships/{own.pk}/")
    assert removed.status_code == 400 and removed.json()["code"] == "last_tenant_admin"
    assert Membership.objects.get(pk=own.pk).role == "admin"


def test_a_tenant_admin_changes_a_role(api_as, acme):
    target = Membership.objects.get(user=acme.member)
    response = api_as(acme.admin).patch(f"/api/v1/memberships/{target.pk}/", {"role": "admin"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "admin"
    assert api_as(acme.member).post("/api/v1/api-keys/", {"name": "now-i-can"}, format="json").status_code == 201


def test_listing_memberships_runs_a_constant_number_of_queries(api_as, acme):
    def fill(rows: int) -> None:
        for _ in range(rows - Membership.objects.filter(tenant=acme.tenant).count()):
            member_of(acme.tenant, Role.VIEWER)

    few, many = list_query_counts(api_as(acme.member), "/api/v1/memberships/", fill)
    assert few == many


# Users


def test_a_platform_admin_creates_a_user_who_can_sign_in(api_as, platform_admin):
    payload = {"username": "ada", "email": "ada@example.com", "password": "an-unusual-passphrase-42"}
    response = api_as(platform_admin).post("/api/v1/users/", payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "password" not in body and body["is_platform_admin"] is False and body["memberships"] == []
    assert User.objects.get(username="ada").check_password("an-unusual-passphrase-42")


def test_a_user_without_an_email_address_is_shown_with_null_not_an_empty_address(api_as, platform_admin):
    factories.UserFactory(username="no-mail", email="")
    listed = api_as(platform_admin).get("/api/v1/users/", {"q": "no-mail"}).json()["results"]
    assert [(user["username"], user["email"]) for user in listed] == [("no-mail", None)]


def test_a_weak_password_is_a_field_error(api_as, platform_admin):
    response = api_as(platform_admin).post("/api/v1/users/", {"username": "ada", "password": "12345678"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "password" in response.json()["fields"]
    assert not User.objects.filter(username="ada").exists()


def test_tenant_users_see_only_themselves_and_cannot_create_users(api_as, acme):
    client = api_as(acme.admin)
    assert [u["username"] for u in client.get("/api/v1/users/").json()["results"]] == ["acme-admin"]
    assert client.get(f"/api/v1/users/{acme.member.pk}/").status_code == 404
    response = client.post("/api/v1/users/", {"username": "sneaky", "password": "an-unusual-passphrase-42"})
    assert response.status_code == 403
    assert not User.objects.filter(username="sneaky").exists()


def test_me_shows_my_tenants_and_roles(api_as, acme, globex):
    Membership.objects.create(user=acme.member, tenant=globex.tenant, role=Role.VIEWER)
    body = api_as(acme.member).get("/api/v1/users/me/").json()
    assert body["username"] == "acme-member" and body["is_platform_admin"] is False
    assert [(m["tenant"], m["role"]) for m in body["memberships"]] == [("acme", "member"), ("globex", "viewer")]


def test_deleting_a_user_deactivates_them_and_their_tokens_stop(api_as, platform_admin, acme):
    their_client = api_as(acme.member)
    response = api_as(platform_admin).delete(f"/api/v1/users/{acme.member.pk}/")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert their_client.get("/api/v1/users/me/").status_code == 401
    assert User.objects.filter(pk=acme.member.pk).exists()


def test_a_platform_admin_promotes_a_user_but_cannot_demote_themselves(api_as, platform_admin, acme):
    client = api_as(platform_admin)
    promoted = client.patch(f"/api/v1/users/{acme.viewer.pk}/", {"is_platform_admin": True}, format="json")
    assert promoted.status_code == 200 and promoted.json()["is_platform_admin"] is True
    refused = client.patch(f"/api/v1/users/{platform_admin.pk}/", {"is_platform_admin": False}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "self_lockout"


def test_listing_users_runs_a_constant_number_of_queries(api_as, platform_admin, acme):
    def fill(rows: int) -> None:
        for _ in range(rows - User.objects.count()):
            member_of(acme.tenant, Role.MEMBER)

    few, many = list_query_counts(api_as(platform_admin), "/api/v1/users/", fill)
    assert few == many


# Audit log


def test_a_tenant_admin_reads_their_tenants_audit_log_only(api_as, platform_admin, acme, globex):
    api_as(acme.admin).post("/api/v1/api-keys/", {"name": "acme-app"}, format="json")
    api_as(globex.admin).post("/api/v1/api-keys/", {"name": "globex-app"}, format="json")
    payload = {"slug": "gw", "name": "gw", "address": "gw.example.com", "port_range_start": 1, "port_range_end": 2}
    api_as(platform_admin).post("/api/v1/gateways/", payload, format="json")

    entries = api_as(acme.admin).get("/api/v1/audit-log/").json()["results"]
    assert [(e["action"], e["tenant"]) for e in entries] == [("api_key.create", "acme")]
    assert entries[0]["object_repr"].startswith("acme-app")
    everything = api_as(platform_admin).get("/api/v1/audit-log/").json()["results"]
    assert {(e["action"], e["tenant"]) for e in everything} >= {
        ("api_key.create", "acme"), ("api_key.create", "globex"), ("gateway.create", None),
    }  # fmt: skip


def test_members_and_viewers_cannot_read_the_audit_log(api_as, acme):
    for user in (acme.member, acme.viewer):
        assert api_as(user).get("/api/v1/audit-log/").status_code == 403


def test_audit_entries_show_before_and_after(api_as, acme):
    target = Membership.objects.get(user=acme.member)
    api_as(acme.admin).patch(f"/api/v1/memberships/{target.pk}/", {"role": "viewer"}, format="json")
    entry = api_as(acme.admin).get("/api/v1/audit-log/", {"action": "membership.update"}).json()["results"][0]
    assert (entry["actor"], entry["object_type"], entry["object_id"]) == ("acme-admin", "membership", str(target.pk))
    assert (entry["before"], entry["after"]) == ({"role": "member"}, {"role": "viewer"})


def test_audit_log_filters(api_as, platform_admin, acme):
    first = AuditEntry.objects.create(actor_name="a", tenant=acme.tenant, action="x.create", object_type="x")
    second = AuditEntry.objects.create(actor_name="b", action="y.update", object_type="y")
    AuditEntry.objects.filter(pk=first.pk).update(created_at="2030-01-01T00:00:00Z")
    AuditEntry.objects.filter(pk=second.pk).update(created_at="2030-01-02T00:00:00Z")
    client = api_as(platform_admin)

    def ids(**query) -> list[int]:
        return [e["id"] for e in client.get("/api/v1/audit-log/", query).json()["results"]]

    assert ids(tenant="acme") == [first.pk]
    assert ids(actor="b") == ids(action="y.update") == ids(object_type="y") == [second.pk]
    assert ids(since="2030-01-02T00:00:00Z") == [second.pk]
    assert ids(until="2030-01-02T00:00:00Z", since="2029-12-31T00:00:00Z") == [first.pk]


def test_listing_the_audit_log_runs_a_constant_number_of_queries(api_as, acme):
    def fill(rows: int) -> None:
        for _ in range(rows - AuditEntry.objects.filter(tenant=acme.tenant).count()):
            AuditEntry.objects.create(actor_name="x", tenant=acme.tenant, action="x.create", object_type="x")

    few, many = list_query_counts(api_as(acme.admin), "/api/v1/audit-log/", fill)
    assert few == many


def test_one_user_in_two_tenants_manages_only_where_they_are_admin(api_as):
    acme, globex = tenant_with_people("acme"), tenant_with_people("globex")
    Membership.objects.create(user=acme.admin, tenant=globex.tenant, role=Role.MEMBER)
    client = api_as(acme.admin)
    factories.UserFactory(username="newcomer")
    refused = client.post("/api/v1/memberships/", {"tenant": "globex", "user": "newcomer"}, format="json")
    assert refused.status_code == 400 and "tenant" in refused.json()["fields"]
    theirs = Membership.objects.get(user=globex.viewer)
    assert client.get(f"/api/v1/memberships/{theirs.pk}/").status_code == 200
    assert client.patch(f"/api/v1/memberships/{theirs.pk}/", {"role": "admin"}, format="json").status_code == 403
