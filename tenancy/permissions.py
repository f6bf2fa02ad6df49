"""Who may do what: the roles of a user in each tenant, read once per request."""

from __future__ import annotations

from tenancy.choices import ROLES_FOR_ACTION
from tenancy.querysets import is_platform_admin

PLATFORM = "platform"  # a write only platform admins may make


def tenant_roles(user) -> dict[int, str]:
    """``{tenant_id: role}`` for ``user``, cached on the user object for the rest of the request."""
    cached = getattr(user, "_aicp_tenant_roles", None)
    if cached is None:
        cached = dict(user.memberships.values_list("tenant_id", "role")) if user.is_authenticated else {}
        user._aicp_tenant_roles = cached
    return cached


def user_can(user, action: str, tenant_id: int | None) -> bool:
    """Whether ``user`` may perform ``action`` (view/operate/manage/platform) on an object of ``tenant_id``;
    ``tenant_id`` None means a platform-wide object."""
    if is_platform_admin(user):
        return True
    if action == PLATFORM or tenant_id is None or not (user and user.is_authenticated):
        return False
    return tenant_roles(user).get(tenant_id) in ROLES_FOR_ACTION[action]


def user_can_anywhere(user, action: str) -> bool:
    """Whether ``user`` holds a role admitting ``action`` in at least one tenant."""
    if is_platform_admin(user):
        return True
    if action == PLATFORM:
        return False
    return any(role in ROLES_FOR_ACTION[action] for role in tenant_roles(user).values())
