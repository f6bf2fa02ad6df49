from tenancy.api.views import (
    AuditEntryViewSet,
    MembershipViewSet,
    PersonalAPITokenViewSet,
    TenantAPIKeyViewSet,
    TenantViewSet,
    UserViewSet,
)


def register(router) -> None:
    router.register("tenants", TenantViewSet, basename="tenant")
    router.register("memberships", MembershipViewSet, basename="membership")
    router.register("users", UserViewSet, basename="user")
    router.register("tokens", PersonalAPITokenViewSet, basename="token")
    router.register("api-keys", TenantAPIKeyViewSet, basename="api-key")
    router.register("audit-log", AuditEntryViewSet, basename="audit-entry")
