"""What the console's navigation needs on every page: the user's standing on the platform."""

from __future__ import annotations

from tenancy.choices import Action
from tenancy.querysets import is_platform_admin, tenant_ids_for


def console(request) -> dict:
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {}
    admin = is_platform_admin(user)
    return {
        "is_platform_admin": admin,
        "manages_a_tenant": admin or bool(tenant_ids_for(user, Action.MANAGE)),
        "operates_a_tenant": admin or bool(tenant_ids_for(user, Action.OPERATE)),
    }
