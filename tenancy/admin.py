from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from compute_pools.models import PoolGrant
from controlplane.admin import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin
from tenancy import selectors, services
from tenancy.audit import audit_record, audit_snapshot
from tenancy.models import AuditEntry, Membership, PersonalAPIToken, Tenant, TenantAPIKey, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Django's user admin, with every save in the audit log. Users are deactivated, never deleted."""

    list_display = ("username", "email", "is_superuser", "is_active", "last_login")
    list_filter = ("is_superuser", "is_active")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        before = audit_snapshot(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            action="user.update" if change else "user.create",
            obj=obj,
            before=before,
            after=audit_snapshot(obj),
        )


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ("user", "role", "created_at")
    readonly_fields = fields


class PoolGrantInline(ReadOnlyInline):
    model = PoolGrant
    fields = ("pool", "max_compute_units", "created_at")
    readonly_fields = fields


@admin.register(Tenant)
class TenantAdmin(ServiceAdmin):
    list_display = ("slug", "name", "max_tasks", "tasks_used", "max_compute_units", "compute_units_used")
    search_fields = ("slug", "name")
    fixed_after_create = ("slug",)
    inlines = (MembershipInline, PoolGrantInline)

    def get_queryset(self, request):
        return selectors.tenant_list_queryset()

    @admin.display(ordering="tasks_used")
    def tasks_used(self, tenant: Tenant) -> int:
        return tenant.tasks_used

    @admin.display(ordering="compute_units_used")
    def compute_units_used(self, tenant: Tenant) -> int:
        return tenant.compute_units_used

    def service_create(self, actor, data):
        return services.tenant_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        return services.tenant_update(actor=actor, tenant=obj, **changed)

    def service_delete(self, actor, obj):
        services.tenant_delete(actor=actor, tenant=obj)


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    list_display = ("tenant", "user", "role", "created_at")
    list_filter = ("role", "tenant")
    list_select_related = ("tenant", "user")
    search_fields = ("user__username", "tenant__slug")
    autocomplete_fields = ("user",)
    fixed_after_create = ("tenant", "user")

    def service_create(self, actor, data):
        return services.membership_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        return services.membership_update(actor=actor, membership=obj, role=changed.get("role", obj.role))

    def service_delete(self, actor, obj):
        services.membership_delete(actor=actor, membership=obj)


class CredentialAdmin(ReadOnlyAdmin):
    """Credentials are issued through the API, which shows the secret once; here they are listed and
    revoked. The digest is never shown."""

    fields = ("name", "key_id", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    list_display = ("key_id", "name", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("key_id", "name")
    actions = ("revoke",)

    @admin.action(description="Revoke the selected credentials")
    def revoke(self, request, queryset) -> None:
        live = list(queryset.filter(revoked_at__isnull=True))
        for credential in live:
            services.credential_revoke(actor=request.user, credential=credential)
        self.message_user(request, f"Revoked {len(live)} credential(s).", messages.SUCCESS)


@admin.register(PersonalAPIToken)
class PersonalAPITokenAdmin(CredentialAdmin):
    fields = ("user", *CredentialAdmin.fields)
    readonly_fields = fields
    list_display = ("key_id", "name", "user", *CredentialAdmin.list_display[2:])
    list_select_related = ("user",)
    search_fields = (*CredentialAdmin.search_fields, "user__username")


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(CredentialAdmin):
    fields = ("tenant", "created_by", *CredentialAdmin.fields)
    readonly_fields = fields
    list_display = ("key_id", "name", "tenant", *CredentialAdmin.list_display[2:])
    list_filter = ("tenant", "revoked_at")
    list_select_related = ("tenant",)
    search_fields = (*CredentialAdmin.search_fields, "tenant__slug")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_name", "tenant", "action", "object_repr")
    list_filter = ("action", "object_type", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("actor_name", "action", "object_repr", "object_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at", "actor_name", "tenant", "action", "object_type", "object_id", "object_repr", "before", "after",
    )  # fmt: skip
    readonly_fields = fields
