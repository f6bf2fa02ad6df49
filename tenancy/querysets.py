"""Tenant scoping in one place.

``restrict(user, action)`` is the only way the API (and later the console) reads tenant-owned rows: it
returns what ``user`` may see (``view``), operate (``operate``) or manage (``manage``). Rows of a tenant the
user has no suitable role in are simply absent, so another tenant's object answers 404, never 403.
"""

from __future__ import annotations

from django.db import models

from tenancy.choices import ROLES_FOR_ACTION, Action


def tenant_ids_for(user, action: str) -> list[int]:
    """The tenants in which ``user`` holds a role that admits ``action``."""
    from tenancy.permissions import tenant_roles

    return sorted(tenant_id for tenant_id, role in tenant_roles(user).items() if role in ROLES_FOR_ACTION[action])


def is_platform_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_superuser)


class RestrictedQuerySet(models.QuerySet):
    #: The lookup from this model to its owning tenant's id; override per model.
    tenant_lookup = "tenant_id"

    def restrict(self, user, action: str = Action.VIEW) -> RestrictedQuerySet:
        if is_platform_admin(user):
            return self
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        return self._restrict_to_member(user, action)

    def _restrict_to_member(self, user, action: str) -> RestrictedQuerySet:
        # A literal list of ids (the user's roles are read once per request) plans faster than a subquery.
        return self.filter(**{f"{self.tenant_lookup}__in": tenant_ids_for(user, action)})


class PlatformCatalogQuerySet(RestrictedQuerySet):
    """Shared platform objects (accelerator types, model families, runtime images, gateways): every signed-in
    user may read them, only platform admins change them."""

    def _restrict_to_member(self, user, action: str) -> RestrictedQuerySet:
        return self if action == Action.VIEW else self.none()
