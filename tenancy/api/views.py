from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from controlplane.api.viewsets import (
    RestrictedModelViewSet,
    RestrictedReadOnlyViewSet,
    RoleReadPermission,
    RoleWritePermission,
)
from telemetry.api.serializers import TokensPerMinuteSerializer
from telemetry.selectors import tokens_per_minute
from tenancy import selectors, services
from tenancy.api.serializers import (
    AuditEntrySerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    PersonalAPITokenCreatedSerializer,
    PersonalAPITokenSerializer,
    TenantAPIKeyCreatedSerializer,
    TenantAPIKeySerializer,
    TenantSerializer,
    TenantUpdateSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from tenancy.choices import Action
from tenancy.filtersets import (
    AuditEntryFilterSet,
    MembershipFilterSet,
    PersonalAPITokenFilterSet,
    TenantAPIKeyFilterSet,
    TenantFilterSet,
    UserFilterSet,
)
from tenancy.models import AuditEntry, Membership, PersonalAPIToken, Tenant, TenantAPIKey, User
from tenancy.permissions import PLATFORM


class TenantViewSet(RestrictedModelViewSet):
    """Tenants and their quotas, with what they use now. Platform admins write; members read their own."""

    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer
    filterset_class = TenantFilterSet
    lookup_field = "slug"
    write_action = PLATFORM
    ordering_fields = ["slug", "name", "created_at"]

    def tenant_of(self, obj: Tenant) -> int:
        return obj.pk

    def base_queryset(self):
        return selectors.tenant_list_queryset()

    def get_serializer_class(self):
        return TenantUpdateSerializer if self.action == "partial_update" else TenantSerializer

    @extend_schema(request=TenantSerializer, responses={201: TenantSerializer})
    def create(self, request, *args, **kwargs):
        tenant = services.tenant_create(actor=request.user, **self.validated())
        return self.respond(tenant, status.HTTP_201_CREATED)

    @extend_schema(request=TenantUpdateSerializer, responses=TenantSerializer)
    def partial_update(self, request, *args, **kwargs):
        tenant = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.tenant_update(actor=request.user, tenant=tenant, **data))

    @extend_schema(request=None, responses=TokensPerMinuteSerializer, filters=False)
    @action(detail=True, methods=["get"], url_path="tokens-per-minute")
    def tokens_per_minute(self, request, slug=None):
        """The tenant's tokens-per-minute quota next to its use: input + output tokens of the last 60 seconds
        and of each minute of the last hour."""
        return Response(TokensPerMinuteSerializer(tokens_per_minute(self.get_object())).data)

    def destroy(self, request, *args, **kwargs):
        """Refused while the tenant still has models or tasks; its members, grants and keys go with it."""
        services.tenant_delete(actor=request.user, tenant=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipViewSet(RestrictedModelViewSet):
    """Who belongs to a tenant, in which role. Tenant admins manage their tenant's members; every member
    sees them. A tenant always keeps one tenant admin."""

    queryset = Membership.objects.all()
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilterSet
    write_action = Action.MANAGE
    ordering_fields = ["created_at", "role"]

    def base_queryset(self):
        return selectors.membership_list_queryset()

    def get_serializer_class(self):
        return MembershipUpdateSerializer if self.action == "partial_update" else MembershipSerializer

    @extend_schema(request=MembershipSerializer, responses={201: MembershipSerializer})
    def create(self, request, *args, **kwargs):
        membership = services.membership_create(actor=request.user, **self.validated())
        return self.respond(membership, status.HTTP_201_CREATED)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def partial_update(self, request, *args, **kwargs):
        membership = self.get_object()
        data = self.validated()
        if data:  # a PATCH that changes nothing is answered with the membership as it is
            membership = services.membership_update(actor=request.user, membership=membership, **data)
        return self.respond(membership)

    def destroy(self, request, *args, **kwargs):
        services.membership_delete(actor=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserViewSet(RestrictedModelViewSet):
    """Accounts. Platform admins create, change and deactivate them; anyone else reads only their own
    (``/users/me/``). Users are never deleted, so the audit log keeps naming them."""

    queryset = User.objects.all()
    serializer_class = UserSerializer
    filterset_class = UserFilterSet
    write_action = PLATFORM
    ordering_fields = ["username", "date_joined", "last_login"]

    def tenant_of(self, obj: User) -> None:
        return None

    def base_queryset(self):
        return selectors.user_list_queryset()

    def get_serializer_class(self):
        return {"create": UserCreateSerializer, "partial_update": UserUpdateSerializer}.get(self.action, UserSerializer)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request, *args, **kwargs):
        user = services.user_create(actor=request.user, **self.validated())
        return self.respond(user, status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer)
    def partial_update(self, request, *args, **kwargs):
        user = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.user_update(actor=request.user, user=user, **data))

    @extend_schema(request=None, responses={200: UserSerializer})
    def destroy(self, request, *args, **kwargs):
        """Deactivate: the account can no longer sign in and its tokens stop working; the row stays."""
        return self.respond(services.user_deactivate(actor=request.user, user=self.get_object()))

    @extend_schema(request=None, responses=UserSerializer)
    @action(detail=False, methods=["get"], permission_classes=[permissions.IsAuthenticated])
    def me(self, request):
        """The signed-in user, with their tenants and roles."""
        return self.respond(request.user)


class PersonalAPITokenViewSet(RestrictedModelViewSet):
    """The caller's own personal API tokens. The token itself is returned once, when it is created."""

    queryset = PersonalAPIToken.objects.all()
    serializer_class = PersonalAPITokenSerializer
    filterset_class = PersonalAPITokenFilterSet
    permission_classes = [permissions.IsAuthenticated]
    http_method_names = ["get", "post", "delete", "head", "options"]
    ordering_fields = ["created_at", "name", "last_used_at"]

    @extend_schema(request=PersonalAPITokenSerializer, responses={201: PersonalAPITokenCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.personal_token_create(actor=request.user, **serializer.validated_data)
        token = created.credential
        token.plaintext = created.plaintext
        return Response(PersonalAPITokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        """Revoke: the token stops working at once; it stays listed with its revocation time."""
        services.credential_revoke(actor=request.user, credential=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantAPIKeyViewSet(RestrictedModelViewSet):
    """A tenant's API keys, which a model's callers send at a task's access URL. Tenant admins only: members
    and viewers neither list nor create them. The key itself is returned once, when it is created."""

    queryset = TenantAPIKey.objects.all()
    serializer_class = TenantAPIKeySerializer
    filterset_class = TenantAPIKeyFilterSet
    permission_classes = [RoleWritePermission, RoleReadPermission]
    write_action = Action.MANAGE
    read_action = Action.MANAGE
    http_method_names = ["get", "post", "delete", "head", "options"]
    ordering_fields = ["created_at", "name", "last_used_at"]

    def base_queryset(self):
        return selectors.tenant_api_key_list_queryset()

    @extend_schema(request=TenantAPIKeySerializer, responses={201: TenantAPIKeyCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.tenant_api_key_create(actor=request.user, **serializer.validated_data)
        key = created.credential
        key.plaintext = created.plaintext
        return Response(TenantAPIKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        """Revoke: callers using the key are refused from now on; it stays listed with its revocation time."""
        services.credential_revoke(actor=request.user, credential=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEntryViewSet(RestrictedReadOnlyViewSet):
    """Who changed what, when, with before and after. Tenant admins read their tenants' entries; platform
    admins read all, including platform-wide changes."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    permission_classes = [RoleReadPermission]
    read_action = Action.MANAGE
    ordering_fields = ["created_at"]

    def base_queryset(self):
        return selectors.audit_list_queryset()
