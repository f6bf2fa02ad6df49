from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from reflow.constants import DEFAULT_REFLOW_RETENTION_DAYS, MAX_REFLOW_RETENTION_DAYS
from tenancy.choices import Action, Role
from tenancy.constants import DEFAULT_MAX_COMPUTE_UNITS, DEFAULT_MAX_TASKS, DEFAULT_MAX_TOKENS_PER_MINUTE
from tenancy.querysets import RestrictedQuerySet, is_platform_admin


class UserQuerySet(models.QuerySet):
    def restrict(self, user, action: str = Action.VIEW) -> UserQuerySet:
        """Platform admins see and change every account; anyone else reads only their own."""
        if is_platform_admin(user):
            return self
        if not (user and user.is_authenticated and user.is_active) or action != Action.VIEW:
            return self.none()
        return self.filter(pk=user.pk)


class UserManager(DjangoUserManager.from_queryset(UserQuerySet)):
    pass


class User(AbstractUser):
    """A person or automation account. ``is_superuser`` makes a platform admin; tenant roles come from
    memberships."""

    objects = UserManager()

    @property
    def is_platform_admin(self) -> bool:
        return is_platform_admin(self)


class TenantQuerySet(RestrictedQuerySet):
    tenant_lookup = "id"


class Tenant(models.Model):
    """An isolated organisation: owns members, models, tasks, API keys and reflow data; one Kubernetes
    namespace."""

    slug = models.SlugField(max_length=63, unique=True, help_text="DNS-safe id; names the tenant's namespace.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    max_tasks = models.PositiveIntegerField(default=DEFAULT_MAX_TASKS, validators=[MinValueValidator(0)])
    max_compute_units = models.PositiveIntegerField(default=DEFAULT_MAX_COMPUTE_UNITS)
    max_tokens_per_minute = models.PositiveIntegerField(
        default=DEFAULT_MAX_TOKENS_PER_MINUTE, help_text="Input plus output tokens per minute, enforced by the adapter."
    )
    reflow_retention_days = models.PositiveIntegerField(
        default=DEFAULT_REFLOW_RETENTION_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REFLOW_RETENTION_DAYS)],
        help_text="Captured reflow records older than this many days are deleted.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tenant"],
                name="membership_unique_user_tenant",
                violation_error_message="This user is already a member of the tenant.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class CredentialQuerySet(RestrictedQuerySet):
    def usable(self) -> CredentialQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class Credential(models.Model):
    """A secret shown once: only ``key_id`` and the SHA-256 ``digest`` are stored (see credentials.py)."""

    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=32, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class PersonalTokenQuerySet(CredentialQuerySet):
    def restrict(self, user, action: str = "view") -> PersonalTokenQuerySet:
        # A personal token is its owner's alone, platform admins included.
        if not (user and user.is_authenticated):
            return self.none()
        return self.filter(user=user)


class PersonalAPIToken(Credential):
    """Authenticates automation against the REST API as its owner."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")

    objects = PersonalTokenQuerySet.as_manager()

    class Meta(Credential.Meta):
        verbose_name = "personal API token"


class TenantAPIKey(Credential):
    """Authenticates a model's callers at a task's access URL (checked by the serving adapter)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    objects = CredentialQuerySet.as_manager()

    class Meta(Credential.Meta):
        verbose_name = "tenant API key"


class AuditEntry(models.Model):
    """One write through the console or the API: who, what, when, before and after."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64, help_text="<entity>.<action>, e.g. task.create")
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_time")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"
