from django.db import models


class Role(models.TextChoices):
    """A member's role in one tenant. Platform admins are users with ``is_superuser`` and need no role."""

    ADMIN = "admin", "Tenant admin"  # the tenant's models, tasks, API keys, members, reflow data
    MEMBER = "member", "Member"  # create and operate the tenant's tasks and models
    VIEWER = "viewer", "Viewer"  # read only


class Action(models.TextChoices):
    """What a caller wants to do with a tenant's objects; each action admits a set of roles."""

    VIEW = "view"
    OPERATE = "operate"
    MANAGE = "manage"


ROLES_FOR_ACTION: dict[str, tuple[str, ...]] = {
    Action.VIEW: (Role.ADMIN, Role.MEMBER, Role.VIEWER),
    Action.OPERATE: (Role.ADMIN, Role.MEMBER),
    Action.MANAGE: (Role.ADMIN,),
}
