"""Every write to tenants, memberships, users and credentials, with its rules and its audit entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.errors import (
    CredentialExpiryError,
    LastTenantAdminError,
    MembershipExistsError,
    SelfLockoutError,
    TenantInUseError,
    TenantQuotaBelowUseError,
    UsernameTakenError,
)
from controlplane.services import pick, slugged_create
from tenancy.audit import audit_record, audit_snapshot
from tenancy.choices import Role
from tenancy.constants import PERSONAL_TOKEN_PREFIX, TENANT_API_KEY_PREFIX
from tenancy.credentials import credential_issue
from tenancy.models import Membership, PersonalAPIToken, Tenant, TenantAPIKey, User

TENANT_FIELDS = (
    "name", "description", "max_tasks", "max_compute_units", "max_tokens_per_minute", "reflow_retention_days",
)  # fmt: skip


def tenant_create(*, actor: User, slug: str, name: str, **fields: Any) -> Tenant:
    tenant = Tenant(slug=slug, name=name, **pick(fields, TENANT_FIELDS))
    return slugged_create(tenant, actor=actor, action="tenant.create", tenant=tenant)


def tenant_update(*, actor: User, tenant: Tenant, **fields: Any) -> Tenant:
    """Change a tenant's name or quotas. A quota may not drop below what the tenant already uses: the
    rule counts under the tenant's row lock, as task admission does."""
    from inference_jobs.selectors import tenant_usage

    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = audit_snapshot(tenant)
        usage = tenant_usage(tenant)
        if fields.get("max_tasks", tenant.max_tasks) < usage.tasks:
            raise TenantQuotaBelowUseError(
                f"The tenant already has {usage.tasks} tasks; max tasks cannot be lower.", field="max_tasks"
            )
        if fields.get("max_compute_units", tenant.max_compute_units) < usage.compute_units:
            raise TenantQuotaBelowUseError(
                f"The tenant's tasks already use {usage.compute_units} compute units; the quota cannot be lower.",
                field="max_compute_units",
            )
        for key in TENANT_FIELDS:
            if key in fields:
                setattr(tenant, key, fields[key])
        tenant.full_clean()
        tenant.save()
        audit_record(
            actor=actor, action="tenant.update", obj=tenant, tenant=tenant, before=before, after=audit_snapshot(tenant)
        )
        _tenant_changed(tenant.pk)
    return tenant


def _tenant_changed(tenant_id: int) -> None:
    """Keys or quotas changed: the tenant's tasks re-render their adapter config and namespace quota."""
    from inference_jobs.services import reconcile_tenant_after_commit

    reconcile_tenant_after_commit(tenant_id)


def tenant_delete(*, actor: User, tenant: Tenant) -> None:
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if tenant.inference_tasks.exists() or tenant.models.exists():
            raise TenantInUseError(f"Tenant '{tenant.slug}' still has models or inference tasks; delete them first.")
        audit_record(actor=actor, action="tenant.delete", obj=tenant, before=audit_snapshot(tenant))
        tenant.delete()


def _locked_tenant(tenant_id: int) -> Tenant:
    return Tenant.objects.select_for_update().get(pk=tenant_id)


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": [f"'{role}' is not a role; choose one of {', '.join(Role.values)}."]})


def membership_create(*, actor: User, tenant: Tenant, user: User, role: str = Role.MEMBER) -> Membership:
    _check_role(role)
    with transaction.atomic():
        tenant = _locked_tenant(tenant.pk)
        if Membership.objects.filter(tenant=tenant, user=user).exists():
            raise MembershipExistsError(f"{user.username} is already a member of {tenant.slug}.")
        try:
            with transaction.atomic():
                membership = Membership.objects.create(tenant=tenant, user=user, role=role)
        except IntegrityError as exc:
            raise MembershipExistsError(f"{user.username} is already a member of {tenant.slug}.") from exc
        audit_record(
            actor=actor, action="membership.create", obj=membership, tenant=tenant, after=audit_snapshot(membership)
        )
    return membership


def _ensure_another_admin(membership: Membership) -> None:
    """The caller holds the tenant's row lock, so two admins demoting each other at once cannot both pass."""
    others = Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.ADMIN).exclude(pk=membership.pk)
    if not others.exists():
        raise LastTenantAdminError(f"{membership.user.username} is the last tenant admin of {membership.tenant.slug}.")


def membership_update(*, actor: User, membership: Membership, role: str) -> Membership:
    _check_role(role)
    with transaction.atomic():
        _locked_tenant(membership.tenant_id)
        membership = (
            Membership.objects.select_for_update(of=("self",)).select_related("tenant", "user").get(pk=membership.pk)
        )
        before = audit_snapshot(membership)
        if membership.role == Role.ADMIN and role != Role.ADMIN:
            _ensure_another_admin(membership)
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            actor=actor,
            action="membership.update",
            obj=membership,
            tenant=membership.tenant,
            before=before,
            after=audit_snapshot(membership),
        )
    return membership


def membership_delete(*, actor: User, membership: Membership) -> None:
    with transaction.atomic():
        _locked_tenant(membership.tenant_id)
        membership = (
            Membership.objects.select_for_update(of=("self",)).select_related("tenant", "user").get(pk=membership.pk)
        )
        if membership.role == Role.ADMIN:
            _ensure_another_admin(membership)
        audit_record(
            actor=actor,
            action="membership.delete",
            obj=membership,
            tenant=membership.tenant,
            before=audit_snapshot(membership),
        )
        membership.delete()


USER_FIELDS = ("email", "first_name", "last_name", "is_active")


def _set_password(user: User, password: str | None) -> None:
    """Django's password validators, reported on the ``password`` field; None leaves an unusable password
    (an automation account that signs in with tokens only)."""
    if password is None:
        user.set_unusable_password()
        return
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)


def user_create(
    *,
    actor: User,
    username: str,
    password: str | None = None,
    is_platform_admin: bool = False,
    **fields: Any,
) -> User:
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise UsernameTakenError(f"The username '{username}' is taken.")
        user = User(username=username, **{k: v for k, v in fields.items() if k in USER_FIELDS})
        user.is_superuser = user.is_staff = is_platform_admin
        user.full_clean(exclude=["password"], validate_unique=False)
        _set_password(user, password)
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError as exc:
            raise UsernameTakenError(f"The username '{username}' is taken.") from exc
        audit_record(actor=actor, action="user.create", obj=user, after=audit_snapshot(user))
    return user


def user_update(*, actor: User, user: User, **fields: Any) -> User:
    """Change a user's details, platform-admin flag, active flag or password. An admin cannot lock
    themselves out: deactivating their own account or dropping their own admin flag is refused."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.pk == getattr(actor, "pk", None) and (
            fields.get("is_active") is False or fields.get("is_platform_admin") is False
        ):
            raise SelfLockoutError("You cannot deactivate your own account or remove your own platform admin role.")
        before = audit_snapshot(user)
        for key in USER_FIELDS:
            if key in fields:
                setattr(user, key, fields[key])
        if "is_platform_admin" in fields:
            user.is_superuser = user.is_staff = fields["is_platform_admin"]
        user.full_clean(exclude=["password"], validate_unique=False)
        after_extra = {}
        if fields.get("password") is not None:
            _set_password(user, fields["password"])
            before["password"], after_extra["password"] = "(previous)", "(changed)"
        user.save()
        audit_record(
            actor=actor, action="user.update", obj=user, before=before, after={**audit_snapshot(user), **after_extra}
        )
    return user


def user_deactivate(*, actor: User, user: User) -> User:
    """Users are never deleted: their audit trail and the objects they created keep naming them."""
    return user_update(actor=actor, user=user, is_active=False)


@dataclass(frozen=True)
class CreatedCredential:
    """A new credential and its plaintext, which exists only here and is shown once."""

    credential: PersonalAPIToken | TenantAPIKey
    plaintext: str


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise CredentialExpiryError("The expiry time must be in the future.")


def personal_token_create(*, actor: User, name: str, expires_at: datetime | None = None) -> CreatedCredential:
    _check_expiry(expires_at)
    issued = credential_issue(PERSONAL_TOKEN_PREFIX)
    with transaction.atomic():
        token = PersonalAPIToken.objects.create(
            user=actor, name=name, key_id=issued.key_id, digest=issued.digest, expires_at=expires_at
        )
        audit_record(actor=actor, action="personal_token.create", obj=token, after=audit_snapshot(token))
    return CreatedCredential(token, issued.plaintext)


def tenant_api_key_create(
    *, actor: User, tenant: Tenant, name: str, expires_at: datetime | None = None
) -> CreatedCredential:
    _check_expiry(expires_at)
    issued = credential_issue(TENANT_API_KEY_PREFIX)
    with transaction.atomic():
        key = TenantAPIKey.objects.create(
            tenant=tenant,
            name=name,
            key_id=issued.key_id,
            digest=issued.digest,
            expires_at=expires_at,
            created_by=actor,
        )
        audit_record(actor=actor, action="api_key.create", obj=key, tenant=tenant, after=audit_snapshot(key))
        _tenant_changed(tenant.pk)
    return CreatedCredential(key, issued.plaintext)


def credential_revoke(*, actor: User, credential: PersonalAPIToken | TenantAPIKey) -> None:
    """Revoke now; the row stays so that the audit log and usage still name it."""
    with transaction.atomic():
        credential = type(credential).objects.select_for_update().get(pk=credential.pk)
        if credential.revoked_at is not None:
            return
        before = audit_snapshot(credential)
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
        kind = "api_key" if isinstance(credential, TenantAPIKey) else "personal_token"
        audit_record(
            actor=actor,
            action=f"{kind}.revoke",
            obj=credential,
            tenant=getattr(credential, "tenant", None),
            before=before,
            after=audit_snapshot(credential),
        )
        if isinstance(credential, TenantAPIKey):
            _tenant_changed(credential.tenant_id)
