"""Tenancy services: the rules they keep and the audit entries they leave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from controlplane import errors
from tenancy import services
from tenancy.choices import Role
from tenancy.credentials import credential_digest
from tenancy.models import AuditEntry, Membership, PersonalAPIToken, Tenant, User
from tests import factories
from tests.conftest import member_of

pytestmark = pytest.mark.django_db


def test_tenant_create_records_who_and_what(platform_admin):
    tenant = services.tenant_create(actor=platform_admin, slug="acme", name="Acme", max_tasks=5)
    entry = AuditEntry.objects.get(action="tenant.create")
    assert (entry.actor_name, entry.tenant, entry.object_repr) == ("root", tenant, "acme")
    assert entry.before is None and entry.after["max_tasks"] == 5


def test_a_taken_tenant_slug_is_refused(platform_admin):
    factories.TenantFactory(slug="acme")
    with pytest.raises(errors.SlugTakenError):
        services.tenant_create(actor=platform_admin, slug="acme", name="Again")
    assert Tenant.objects.filter(slug="acme").count() == 1


def test_tenant_update_records_only_what_changed(platform_admin):
    tenant = factories.TenantFactory(max_tasks=10, name="Acme")
    services.tenant_update(actor=platform_admin, tenant=tenant, max_tasks=12, name="Acme")
    entry = AuditEntry.objects.get(action="tenant.update")
    assert (entry.before, entry.after) == ({"max_tasks": 10}, {"max_tasks": 12})


@pytest.mark.parametrize(("max_tasks", "refused"), [(1, True), (2, False), (3, False)])
def test_task_quota_may_not_drop_below_the_tasks_a_tenant_has(platform_admin, max_tasks, refused):
    tenant = factories.TenantFactory()
    factories.TaskFactory.create_batch(2, tenant=tenant)
    if refused:
        with pytest.raises(errors.TenantQuotaBelowUseError) as caught:
            services.tenant_update(actor=platform_admin, tenant=tenant, max_tasks=max_tasks)
        assert caught.value.field == "max_tasks"
    else:
        services.tenant_update(actor=platform_admin, tenant=tenant, max_tasks=max_tasks)
    tenant.refresh_from_db()
    assert tenant.max_tasks == (100 if refused else max_tasks)


def test_compute_quota_counts_running_tasks_but_not_stopped_ones(platform_admin):
    tenant = factories.TenantFactory()
    factories.TaskFactory(tenant=tenant, compute_units_per_instance=4, instances=2)
    factories.TaskFactory(tenant=tenant, compute_units_per_instance=8, desired_state="stopped")
    services.tenant_update(actor=platform_admin, tenant=tenant, max_compute_units=8)
    with pytest.raises(errors.TenantQuotaBelowUseError) as caught:
        services.tenant_update(actor=platform_admin, tenant=tenant, max_compute_units=7)
    assert caught.value.field == "max_compute_units"


def test_a_tenant_with_tasks_cannot_be_deleted(platform_admin):
    task = factories.TaskFactory()
    with pytest.raises(errors.TenantInUseError):
        services.tenant_delete(actor=platform_admin, tenant=task.tenant)
    assert Tenant.objects.filter(pk=task.tenant_id).exists()


def test_deleting_a_tenant_keeps_its_audit_trail(platform_admin):
    tenant = factories.TenantFactory(slug="gone")
    services.tenant_delete(actor=platform_admin, tenant=tenant)
    entry = AuditEntry.objects.get(action="tenant.delete")
    assert entry.object_repr == "gone" and entry.before["slug"] == "gone"


def test_a_user_is_a_member_of_a_tenant_once(platform_admin):
    tenant = factories.TenantFactory()
    user = member_of(tenant, Role.VIEWER)
    with pytest.raises(errors.MembershipExistsError):
        services.membership_create(actor=platform_admin, tenant=tenant, user=user, role=Role.ADMIN)
    assert Membership.objects.get(user=user).role == Role.VIEWER


def test_an_unknown_role_is_a_field_error(platform_admin):
    tenant = factories.TenantFactory()
    with pytest.raises(ValidationError) as caught:
        services.membership_create(actor=platform_admin, tenant=tenant, user=factories.UserFactory(), role="owner")
    assert "role" in caught.value.message_dict


def test_the_last_tenant_admin_can_be_neither_demoted_nor_removed(platform_admin):
    tenant = factories.TenantFactory()
    admin = Membership.objects.get(user=member_of(tenant, Role.ADMIN))
    with pytest.raises(errors.LastTenantAdminError):
        services.membership_update(actor=platform_admin, membership=admin, role=Role.MEMBER)
    with pytest.raises(errors.LastTenantAdminError):
        services.membership_delete(actor=platform_admin, membership=admin)
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN


def test_with_a_second_admin_one_may_step_down(platform_admin):
    tenant = factories.TenantFactory()
    first = Membership.objects.get(user=member_of(tenant, Role.ADMIN))
    second = Membership.objects.get(user=member_of(tenant, Role.ADMIN))
    services.membership_update(actor=platform_admin, membership=first, role=Role.VIEWER)
    with pytest.raises(errors.LastTenantAdminError):
        services.membership_delete(actor=platform_admin, membership=second)
    entry = AuditEntry.objects.get(action="membership.update")
    assert (entry.tenant, entry.before, entry.after) == (tenant, {"role": "admin"}, {"role": "viewer"})


def test_user_create_hashes_the_password_and_keeps_it_out_of_the_log(platform_admin):
    user = services.user_create(
        actor=platform_admin, username="ada", email="ada@example.com", password="an-unusual-passphrase-42"
    )
    assert user.check_password("an-unusual-passphrase-42")
    assert user.password != "an-unusual-passphrase-42"
    entry = AuditEntry.objects.get(action="user.create")
    assert "password" not in entry.after
    assert "an-unusual-passphrase-42" not in str(entry.after)


def test_a_weak_password_is_refused_on_the_password_field(platform_admin):
    with pytest.raises(ValidationError) as caught:
        services.user_create(actor=platform_admin, username="ada", password="password")
    assert "password" in caught.value.message_dict
    assert not User.objects.filter(username="ada").exists()


def test_usernames_are_unique_regardless_of_case(platform_admin):
    factories.UserFactory(username="ada")
    with pytest.raises(errors.UsernameTakenError):
        services.user_create(actor=platform_admin, username="Ada")


def test_a_platform_admin_flag_makes_superuser_and_staff(platform_admin):
    user = services.user_create(actor=platform_admin, username="ops", is_platform_admin=True)
    assert user.is_superuser and user.is_staff and not user.has_usable_password()
    services.user_update(actor=platform_admin, user=user, is_platform_admin=False)
    user.refresh_from_db()
    assert not (user.is_superuser or user.is_staff)


def test_a_platform_admin_cannot_lock_themselves_out(platform_admin):
    for change in ({"is_active": False}, {"is_platform_admin": False}):
        with pytest.raises(errors.SelfLockoutError):
            services.user_update(actor=platform_admin, user=platform_admin, **change)
    platform_admin.refresh_from_db()
    assert platform_admin.is_active and platform_admin.is_superuser


def test_a_password_change_is_audited_without_the_password(platform_admin):
    user = factories.UserFactory()
    services.user_update(actor=platform_admin, user=user, password="another-unusual-passphrase-7")
    entry = AuditEntry.objects.get(action="user.update")
    assert entry.after == {"password": "(changed)"}
    user.refresh_from_db()
    assert user.check_password("another-unusual-passphrase-7")


def test_a_credential_stores_a_digest_never_the_plaintext():
    user = factories.UserFactory()
    created = services.personal_token_create(actor=user, name="ci")
    stored = PersonalAPIToken.objects.get(pk=created.credential.pk)
    assert created.plaintext.startswith(f"aicp_pat_{stored.key_id}_")
    assert stored.digest != created.plaintext and stored.digest == credential_digest(created.plaintext)
    entry = AuditEntry.objects.get(action="personal_token.create")
    assert "digest" not in entry.after and created.plaintext not in str(entry.after)


def test_a_credential_cannot_expire_in_the_past():
    with pytest.raises(errors.CredentialExpiryError):
        services.personal_token_create(
            actor=factories.UserFactory(), name="old", expires_at=timezone.now() - timedelta(minutes=1)
        )
    assert not PersonalAPIToken.objects.exists()


def test_revoking_twice_records_one_revocation():
    tenant = factories.TenantFactory()
    admin = member_of(tenant, Role.ADMIN)
    key = services.tenant_api_key_create(actor=admin, tenant=tenant, name="app").credential
    services.credential_revoke(actor=admin, credential=key)
    services.credential_revoke(actor=admin, credential=key)
    entry = AuditEntry.objects.get(action="api_key.revoke")
    assert entry.tenant == tenant and entry.before == {"revoked_at": None} and entry.after["revoked_at"]
    key.refresh_from_db()
    assert not key.is_usable
