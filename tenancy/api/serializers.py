"""Shapes of the tenancy API. Serializers check the shape of input only; every rule is in the services."""

from __future__ import annotations

from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from controlplane.api.serializers import ModelSerializer, TenantDefaultMixin, tenant_field
from tenancy.choices import Role
from tenancy.models import AuditEntry, Membership, PersonalAPIToken, Tenant, TenantAPIKey, User

QUOTA_FIELDS = ["max_tasks", "max_compute_units", "max_tokens_per_minute"]


class TenantSerializer(ModelSerializer):
    # Declared, so that a taken slug is the service's ``slug_taken`` rather than a generic uniqueness error.
    slug = serializers.SlugField(max_length=63, help_text="DNS-safe id; names the tenant's namespace. Fixed.")
    tasks_used = serializers.IntegerField(read_only=True, help_text="Inference tasks the tenant has now.")
    compute_units_used = serializers.IntegerField(
        read_only=True, help_text="Compute units held by the tenant's tasks that are not stopped."
    )

    class Meta:
        model = Tenant
        fields = [
            "slug", "name", "description", *QUOTA_FIELDS, "reflow_retention_days", "tasks_used",
            "compute_units_used", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]


class TenantUpdateSerializer(ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["name", "description", *QUOTA_FIELDS, "reflow_retention_days"]


class MembershipSerializer(TenantDefaultMixin, ModelSerializer):
    tenant = tenant_field(required=False)
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=User.objects.filter(is_active=True),
        help_text="Username of an active user.",
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)

    class Meta:
        model = Membership
        fields = ["id", "tenant", "user", "role", "created_at"]
        read_only_fields = ["created_at"]
        # A second membership of the same user is the service's ``membership_exists``.
        validators = []


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class UserMembershipSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tenant_name = serializers.CharField(source="tenant.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["tenant", "tenant_name", "role"]
        read_only_fields = fields


class OptionalEmailField(serializers.EmailField):
    """An address, or null where the user has none (stored as an empty string, which is no e-mail address)."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return value or None


class UserSerializer(ModelSerializer):
    email = OptionalEmailField(read_only=True)
    is_platform_admin = serializers.BooleanField(source="is_superuser", read_only=True)
    memberships = UserMembershipSerializer(many=True, read_only=True)

    class Meta:
        model = User
        fields = [
            "id", "username", "email", "first_name", "last_name", "is_platform_admin", "is_active", "memberships",
            "date_joined", "last_login",
        ]  # fmt: skip
        read_only_fields = fields


class _UserWriteSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    password = serializers.CharField(
        required=False,
        write_only=True,
        style={"input_type": "password"},
        help_text="Checked by the platform's password rules; never returned. Leave out for a token-only account.",
    )


class UserCreateSerializer(_UserWriteSerializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    is_platform_admin = serializers.BooleanField(default=False)


class UserUpdateSerializer(_UserWriteSerializer):
    is_platform_admin = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False, help_text="False deactivates: sign-in and tokens stop.")


class PersonalAPITokenSerializer(ModelSerializer):
    is_usable = serializers.BooleanField(read_only=True, help_text="Neither revoked nor expired.")

    class Meta:
        model = PersonalAPIToken
        fields = ["id", "name", "key_id", "created_at", "expires_at", "last_used_at", "revoked_at", "is_usable"]
        read_only_fields = ["key_id", "created_at", "last_used_at", "revoked_at"]


class PersonalAPITokenCreatedSerializer(PersonalAPITokenSerializer):
    token = serializers.CharField(
        source="plaintext", read_only=True, help_text="The token itself. Shown in this response only; store it now."
    )

    class Meta(PersonalAPITokenSerializer.Meta):
        fields = [*PersonalAPITokenSerializer.Meta.fields, "token"]


class TenantAPIKeySerializer(TenantDefaultMixin, ModelSerializer):
    tenant = tenant_field(required=False)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    is_usable = serializers.BooleanField(read_only=True, help_text="Neither revoked nor expired.")

    class Meta:
        model = TenantAPIKey
        fields = [
            "id", "tenant", "name", "key_id", "created_by", "created_at", "expires_at", "last_used_at", "revoked_at",
            "is_usable",
        ]  # fmt: skip
        read_only_fields = ["key_id", "created_at", "last_used_at", "revoked_at"]


class TenantAPIKeyCreatedSerializer(TenantAPIKeySerializer):
    key = serializers.CharField(
        source="plaintext",
        read_only=True,
        help_text="The key callers send as `Authorization: Bearer <key>`. Shown in this response only.",
    )

    class Meta(TenantAPIKeySerializer.Meta):
        fields = [*TenantAPIKeySerializer.Meta.fields, "key"]


class AuditEntrySerializer(ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id", "created_at", "actor", "tenant", "action", "object_type", "object_id", "object_repr", "before",
            "after",
        ]  # fmt: skip
        read_only_fields = fields
