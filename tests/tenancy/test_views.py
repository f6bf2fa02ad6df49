"""The tenancy console pages: tenants (platform admins), members, API keys and the audit log (tenant admins).

Each page is checked for who may open it, that another tenant's rows stay out of sight (404), that a viewer's
write is refused (403), that a write goes through the service (its row and audit entry exist), and that a
refused rule shows on its form field with the code the API answers.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth import authenticate
from django.urls import reverse
from django.utils import timezone

from gateways.services import gateway_update
from telemetry.models import RequestMetric
from tenancy.choices import Role
from tenancy.credentials import credential_matches
from tenancy.models import AuditEntry, Membership, Tenant, TenantAPIKey, User
from tenancy.services import tenant_api_key_create
from tests import factories
from tests.conftest import member_of
from tests.helpers import field_error_codes, page_query_counts, row
from tests.tenancy.conftest import tenant_with_people

pytestmark = pytest.mark.django_db


def signed_in(client, user):
    client.force_login(user)
    return client


# Tenants


def test_the_tenant_list_shows_each_tenants_quota_use(client, platform_admin, acme):
    factories.TaskFactory(tenant=acme.tenant, compute_units_per_instance=2, instances=3)
    now = timezone.now()
    RequestMetric.objects.create(
        id=uuid.uuid4(), tenant=acme.tenant, task_id=1, api_key_id=1, started_at=now, received_at=now, status=200,
        stream=False, e2e_ms=10, input_tokens=120, output_tokens=30, good=True,
    )  # fmt: skip

    response = signed_in(client, platform_admin).get(reverse("console:tenant-list"))

    assert response.status_code == 200
    acme_row = row(response, 'data-tenant="acme"')
    assert "1 / 100" in acme_row  # tasks used / max
    assert "6 / 1000" in acme_row  # compute units used / max
    assert "150 / 100000" in acme_row  # tokens in the last minute / quota


def test_the_tenant_list_runs_the_same_queries_for_3_or_30_tenants(client, platform_admin):
    def fill(total: int) -> None:
        factories.TenantFactory.create_batch(total - Tenant.objects.count())

    counts = page_query_counts(signed_in(client, platform_admin), reverse("console:tenant-list"), fill)
    assert counts[0] == counts[1]


@pytest.mark.parametrize("name", ["tenant-list", "tenant-create"])
def test_tenant_pages_do_not_exist_for_a_tenant_admin(client, acme, name):
    assert signed_in(client, acme.admin).get(reverse(f"console:{name}")).status_code == 404


def test_editing_a_tenant_does_not_exist_for_its_own_admin(client, acme):
    client = signed_in(client, acme.admin)
    url = reverse("console:tenant-edit", args=["acme"])
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "Mine", "max_tasks": 999}).status_code == 404
    assert Tenant.objects.get(slug="acme").max_tasks == 100


def test_a_signed_out_visitor_is_sent_to_sign_in(client):
    response = client.get(reverse("console:tenant-list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:login"))


TENANT_FORM = {
    "slug": "initech", "name": "Initech", "max_tasks": 5, "max_compute_units": 16, "max_tokens_per_minute": 9000,
    "reflow_retention_days": 7,
}  # fmt: skip


def test_a_platform_admin_creates_a_tenant_through_the_service(client, platform_admin):
    response = signed_in(client, platform_admin).post(reverse("console:tenant-create"), TENANT_FORM)

    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="initech")
    assert (tenant.max_tasks, tenant.max_compute_units, tenant.reflow_retention_days) == (5, 16, 7)
    assert AuditEntry.objects.filter(action="tenant.create", actor=platform_admin, object_id=str(tenant.pk)).exists()


def test_a_taken_tenant_id_shows_the_apis_code_on_the_id_field(client, api_as, platform_admin, acme):
    response = signed_in(client, platform_admin).post(reverse("console:tenant-create"), {**TENANT_FORM, "slug": "acme"})

    assert response.status_code == 200
    api = api_as(platform_admin).post("/api/v1/tenants/", {**TENANT_FORM, "slug": "acme"}, format="json")
    assert field_error_codes(response, "slug") == [api.json()["code"]] == ["slug_taken"]
    assert Tenant.objects.filter(name="Initech").count() == 0


def test_a_platform_admin_changes_quotas_and_retention(client, platform_admin, acme):
    form = {**TENANT_FORM, "name": "Acme", "max_tasks": 7, "reflow_retention_days": 90}
    response = signed_in(client, platform_admin).post(reverse("console:tenant-edit", args=["acme"]), form)

    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.max_tasks, tenant.reflow_retention_days) == (7, 90)
    entry = AuditEntry.objects.get(action="tenant.update")
    assert entry.before["max_tasks"] == 100 and entry.after["max_tasks"] == 7


def test_a_quota_below_what_the_tenant_uses_is_refused_on_its_field(client, platform_admin, acme):
    factories.TaskFactory.create_batch(2, tenant=acme.tenant)
    form = {**TENANT_FORM, "name": "Acme", "max_tasks": 1}

    response = signed_in(client, platform_admin).post(reverse("console:tenant-edit", args=["acme"]), form)

    assert response.status_code == 200
    assert field_error_codes(response, "max_tasks") == ["tenant_quota_below_use"]
    assert Tenant.objects.get(slug="acme").max_tasks == 100
    assert not AuditEntry.objects.filter(action="tenant.update").exists()


# Members


def test_a_tenant_admin_sees_the_members_of_their_tenant_only(client, acme, globex):
    response = signed_in(client, acme.admin).get(reverse("console:member-list"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "acme-viewer" in page and "acme-member" in page
    assert "globex" not in page


def test_a_platform_admin_filters_members_by_tenant(client, platform_admin, acme, globex):
    response = signed_in(client, platform_admin).get(reverse("console:member-list"), {"tenant": "globex"})

    page = response.content.decode()
    assert "globex-admin" in page and "acme-admin" not in page


@pytest.mark.parametrize("name", ["member-list", "member-create", "api-key-list", "api-key-create", "audit-list"])
@pytest.mark.parametrize("role", ["member", "viewer"])
def test_tenant_admin_pages_are_forbidden_to_members_and_viewers(client, acme, name, role):
    user = getattr(acme, role)
    assert signed_in(client, user).get(reverse(f"console:{name}")).status_code == 403


def test_a_tenant_admin_adds_an_existing_user(client, acme):
    newcomer = factories.UserFactory(username="newcomer")

    response = signed_in(client, acme.admin).post(
        reverse("console:member-create"), {"tenant": "acme", "user": "newcomer", "role": Role.VIEWER}
    )

    assert response.status_code == 302
    assert Membership.objects.get(user=newcomer, tenant=acme.tenant).role == Role.VIEWER
    assert AuditEntry.objects.filter(action="membership.create", actor=acme.admin, tenant=acme.tenant).exists()


def test_adding_someone_already_a_member_shows_the_apis_code_on_the_user_field(client, acme):
    response = signed_in(client, acme.admin).post(
        reverse("console:member-create"), {"tenant": "acme", "user": "acme-viewer", "role": Role.ADMIN}
    )

    assert field_error_codes(response, "user") == ["membership_exists"]
    assert Membership.objects.get(user=acme.viewer).role == Role.VIEWER


def test_a_tenant_admin_cannot_add_members_to_another_tenant(client, acme, globex):
    factories.UserFactory(username="newcomer")
    response = signed_in(client, acme.admin).post(
        reverse("console:member-create"), {"tenant": "globex", "user": "newcomer", "role": Role.ADMIN}
    )

    assert field_error_codes(response, "tenant") == ["invalid_choice"]
    assert not Membership.objects.filter(user__username="newcomer").exists()


def test_an_unknown_username_is_a_field_error(client, acme):
    response = signed_in(client, acme.admin).post(
        reverse("console:member-create"), {"tenant": "acme", "user": "nobody", "role": Role.MEMBER}
    )
    assert field_error_codes(response, "user") == ["does_not_exist"]


def test_a_tenant_admin_changes_a_role(client, acme):
    response = signed_in(client, acme.admin).post(
        reverse("console:member-edit", args=[Membership.objects.get(user=acme.viewer).pk]), {"role": Role.MEMBER}
    )

    assert response.status_code == 302
    assert Membership.objects.get(user=acme.viewer).role == Role.MEMBER
    assert AuditEntry.objects.filter(action="membership.update", actor=acme.admin).exists()


def test_demoting_the_last_tenant_admin_is_refused_on_the_role_field_as_in_the_api(client, api_as, acme):
    membership = Membership.objects.get(user=acme.admin)

    response = signed_in(client, acme.admin).post(
        reverse("console:member-edit", args=[membership.pk]), {"role": "viewer"}
    )

    assert response.status_code == 200
    api = api_as(acme.admin).patch(f"/api/v1/memberships/{membership.pk}/", {"role": "viewer"}, format="json")
    assert field_error_codes(response, "role") == [api.json()["code"]] == ["last_tenant_admin"]
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_removing_the_last_tenant_admin_is_refused_with_its_code(client, acme):
    membership = Membership.objects.get(user=acme.admin)

    response = signed_in(client, acme.admin).post(reverse("console:member-delete", args=[membership.pk]), follow=True)

    assert 'data-tags="code-last_tenant_admin"' in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_a_tenant_admin_removes_a_member(client, acme):
    membership = Membership.objects.get(user=acme.member)

    response = signed_in(client, acme.admin).post(reverse("console:member-delete", args=[membership.pk]))

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEntry.objects.filter(action="membership.delete", actor=acme.admin).exists()


def test_a_viewers_member_writes_are_forbidden(client, acme):
    membership = Membership.objects.get(user=acme.member)
    client = signed_in(client, acme.viewer)

    assert client.post(reverse("console:member-edit", args=[membership.pk]), {"role": "admin"}).status_code == 403
    assert client.post(reverse("console:member-delete", args=[membership.pk])).status_code == 403
    assert Membership.objects.get(pk=membership.pk).role == Role.MEMBER


def test_a_viewer_who_admins_another_tenant_still_cannot_change_this_one(client, acme, globex):
    member_of(globex.tenant, Role.ADMIN, user=acme.viewer)
    membership = Membership.objects.get(user=acme.member)

    response = signed_in(client, acme.viewer).post(
        reverse("console:member-edit", args=[membership.pk]), {"role": "admin"}
    )

    assert response.status_code == 403
    assert Membership.objects.get(pk=membership.pk).role == Role.MEMBER


def test_another_tenants_membership_does_not_exist(client, acme, globex):
    membership = Membership.objects.get(user=globex.member)
    client = signed_in(client, acme.admin)

    assert client.get(reverse("console:member-edit", args=[membership.pk])).status_code == 404
    assert client.post(reverse("console:member-delete", args=[membership.pk])).status_code == 404
    assert Membership.objects.filter(pk=membership.pk).exists()


NEW_USER = {"username": "dana", "email": "dana@example.com", "password": "a-long-Passphrase-42"}


def test_a_platform_admin_creates_a_user_who_can_sign_in(client, platform_admin, acme):
    form = {**NEW_USER, "password_again": NEW_USER["password"], "tenant": "acme", "role": Role.MEMBER}

    response = signed_in(client, platform_admin).post(reverse("console:member-user-create"), form)

    assert response.status_code == 302
    assert authenticate(username="dana", password=NEW_USER["password"]) == User.objects.get(username="dana")
    assert Membership.objects.get(user__username="dana").tenant == acme.tenant
    assert AuditEntry.objects.filter(action="user.create", actor=platform_admin).exists()


def test_a_weak_password_is_refused_on_the_password_field_and_creates_no_account(client, platform_admin, acme):
    form = {**NEW_USER, "password": "123", "password_again": "123", "tenant": "acme", "role": Role.MEMBER}

    response = signed_in(client, platform_admin).post(reverse("console:member-user-create"), form)

    assert response.status_code == 200
    codes = field_error_codes(response, "password")
    assert codes and set(codes) == {"invalid"}  # one per broken password rule; the API answers "invalid" too
    assert not User.objects.filter(username="dana").exists()


def test_a_taken_username_is_refused_with_the_apis_code(client, platform_admin, acme):
    form = {
        **NEW_USER,
        "username": "acme-member",
        "password_again": NEW_USER["password"],
        "tenant": "acme",
        "role": "member",
    }

    response = signed_in(client, platform_admin).post(reverse("console:member-user-create"), form)

    assert field_error_codes(response, "username") == ["username_taken"]


def test_creating_users_does_not_exist_for_a_tenant_admin(client, acme):
    assert signed_in(client, acme.admin).get(reverse("console:member-user-create")).status_code == 404


# API keys


def test_a_new_api_key_is_shown_once_in_the_answer_to_the_post(client, acme):
    client = signed_in(client, acme.admin)

    response = client.post(reverse("console:api-key-create"), {"tenant": "acme", "name": "support bot"})

    assert response.status_code == 200  # rendered, not redirected: the key never travels in a URL
    assert response["Cache-Control"] == "no-store"
    key = TenantAPIKey.objects.get(name="support bot", tenant=acme.tenant)
    plaintext = re.search(r'value="(aicp_sk_[^"]+)"', response.content.decode()).group(1)
    assert credential_matches(plaintext, key.digest)
    assert "will not be shown again" in response.content.decode()
    assert AuditEntry.objects.filter(action="api_key.create", actor=acme.admin).exists()

    listing = client.get(reverse("console:api-key-list")).content.decode()
    assert "support bot" in listing and plaintext not in listing and key.key_id in listing


def test_an_expiry_in_the_past_is_refused_on_its_field_and_creates_no_key(client, acme):
    response = signed_in(client, acme.admin).post(
        reverse("console:api-key-create"), {"tenant": "acme", "name": "old", "expires_at": "2001-01-01T00:00"}
    )

    assert field_error_codes(response, "expires_at") == ["credential_expiry_in_past"]
    assert not TenantAPIKey.objects.exists()


def test_a_tenant_admin_lists_and_revokes_their_tenants_keys(client, acme, globex):
    mine = tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="mine").credential
    tenant_api_key_create(actor=globex.admin, tenant=globex.tenant, name="theirs")
    client = signed_in(client, acme.admin)

    listing = client.get(reverse("console:api-key-list")).content.decode()
    assert "mine" in listing and "theirs" not in listing

    assert client.post(reverse("console:api-key-revoke", args=[mine.pk])).status_code == 302
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert AuditEntry.objects.filter(action="api_key.revoke", actor=acme.admin).exists()


def test_another_tenants_key_cannot_be_revoked(client, acme, globex):
    theirs = tenant_api_key_create(actor=globex.admin, tenant=globex.tenant, name="theirs").credential

    assert signed_in(client, acme.admin).post(reverse("console:api-key-revoke", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_cannot_create_or_revoke_keys(client, acme, role):
    key = tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="mine").credential
    client = signed_in(client, getattr(acme, role))

    assert client.post(reverse("console:api-key-create"), {"tenant": "acme", "name": "x"}).status_code == 403
    assert client.post(reverse("console:api-key-revoke", args=[key.pk])).status_code == 403
    assert TenantAPIKey.objects.count() == 1 and TenantAPIKey.objects.get().revoked_at is None


# Audit log


def test_a_tenant_admin_reads_their_tenants_audit_entries_only(client, platform_admin, acme, globex):
    tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="acme key")
    tenant_api_key_create(actor=globex.admin, tenant=globex.tenant, name="globex key")
    gateway_update(actor=platform_admin, gateway=factories.GatewayFactory(slug="platform-wide"), name="renamed")

    page = signed_in(client, acme.admin).get(reverse("console:audit-list")).content.decode()

    assert "acme key" in page
    assert "globex key" not in page and "platform-wide" not in page


def test_a_platform_admin_reads_every_entry_with_before_and_after(client, platform_admin, acme):
    gateway_update(actor=platform_admin, gateway=factories.GatewayFactory(slug="edge"), name="renamed edge")
    tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name="acme key")

    response = signed_in(client, platform_admin).get(reverse("console:audit-list"), {"action": "gateway.update"})

    entry = AuditEntry.objects.get(action="gateway.update")
    entry_row = row(response, f'data-entry="{entry.pk}"')
    assert "root" in entry_row and "gateway.update" in entry_row
    assert "&quot;edge&quot;" in entry_row and "&quot;renamed edge&quot;" in entry_row  # name before and after
    assert "acme key" not in response.content.decode()  # filtered out


def test_the_audit_log_filters_by_actor_and_paginates(client, platform_admin, acme):
    for number in range(55):
        tenant_api_key_create(actor=acme.admin, tenant=acme.tenant, name=f"key {number}")
    client = signed_in(client, platform_admin)

    first = client.get(reverse("console:audit-list"), {"actor": "acme-admin"})
    assert first.content.decode().count("<tr data-entry=") == 50
    assert "page=2" in first.content.decode()
    second = client.get(reverse("console:audit-list"), {"actor": "acme-admin", "page": 2})
    assert second.content.decode().count("<tr data-entry=") == 5
    assert (
        client.get(reverse("console:audit-list"), {"actor": "someone-else"}).content.decode().count("<tr data-entry=")
        == 0
    )


def test_tenant_admins_of_two_tenants_see_both(client, acme):
    other = tenant_with_people("initech")
    member_of(other.tenant, Role.ADMIN, user=acme.admin)
    tenant_api_key_create(actor=other.admin, tenant=other.tenant, name="initech key")

    page = signed_in(client, acme.admin).get(reverse("console:audit-list"), {"tenant": "initech"}).content.decode()

    assert "initech key" in page


def _fill_members(total: int) -> None:
    tenant = Tenant.objects.get(slug="acme")
    for _ in range(total - Membership.objects.count()):
        member_of(tenant)


def _fill_keys(total: int) -> None:
    tenant = Tenant.objects.get(slug="acme")
    for number in range(total - TenantAPIKey.objects.count()):
        tenant_api_key_create(actor=None, tenant=tenant, name=f"key {number}")


def _fill_audit(total: int) -> None:
    tenant = Tenant.objects.get(slug="acme")
    actor = User.objects.get(username="acme-admin")
    while AuditEntry.objects.count() < total:
        tenant_api_key_create(actor=actor, tenant=tenant, name="audited")


@pytest.mark.parametrize(
    "name, fill", [("member-list", _fill_members), ("api-key-list", _fill_keys), ("audit-list", _fill_audit)]
)
def test_tenant_admin_lists_run_the_same_queries_for_3_or_30_rows(client, acme, name, fill):
    counts = page_query_counts(signed_in(client, acme.admin), reverse(f"console:{name}"), fill)
    assert counts[0] == counts[1]
