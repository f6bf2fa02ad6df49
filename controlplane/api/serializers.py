"""Serializer pieces shared by the apps."""

from __future__ import annotations

from django.db import models
from rest_framework import serializers
from rest_framework.fields import empty

from tenancy.models import Tenant


class DefaultingBooleanField(serializers.BooleanField):
    """A boolean that takes its default when left out of form-encoded input too.

    DRF reads a boolean missing from HTML form input as an unchecked checkbox, i.e. False, whatever the
    default; a gateway created with ``curl -d`` would come out inactive and a task without batching.
    """

    default_empty_html = empty


class ModelSerializer(serializers.ModelSerializer):
    """The base of every model serializer of the API."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: DefaultingBooleanField,
    }


class RestrictedSlugRelatedField(serializers.SlugRelatedField):
    """A related object named by slug, chosen only among what the caller may use for this request.

    ``scope`` is the action the caller needs on the related object (``view`` for a pool to deploy on,
    ``operate``/``manage`` for the tenant to write into). Objects out of scope read as nonexistent, so a
    caller cannot learn what another tenant has.
    """

    def __init__(self, *, scope: str | None = None, **kwargs):
        self.scope = scope
        super().__init__(**kwargs)

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        scope = self.scope or self.context.get("write_action", "view")
        return queryset.restrict(request.user if request else None, scope)


class RestrictedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    def __init__(self, *, scope: str | None = None, **kwargs):
        self.scope = scope
        super().__init__(**kwargs)

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        scope = self.scope or self.context.get("write_action", "view")
        return queryset.restrict(request.user if request else None, scope)


def tenant_field(**kwargs) -> RestrictedSlugRelatedField:
    """The ``tenant`` of a new object: one the caller may write into (by its role)."""
    kwargs.setdefault("help_text", "Slug of the owning tenant; optional when you belong to exactly one.")
    return RestrictedSlugRelatedField(slug_field="slug", queryset=Tenant.objects.all(), **kwargs)


class TenantDefaultMixin:
    """Fills ``tenant`` on create when the caller writes into exactly one tenant."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if self.instance is None and "tenant" in self.fields and attrs.get("tenant") is None:
            tenants = list(self.fields["tenant"].get_queryset()[:2])
            if len(tenants) != 1:
                raise serializers.ValidationError({"tenant": ["This field is required."]})
            attrs["tenant"] = tenants[0]
        return attrs
