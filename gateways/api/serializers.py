"""Shapes of the gateway API. Serializers check the shape of input only; every rule is in the services."""

from __future__ import annotations

from rest_framework import serializers

from controlplane.api.serializers import ModelSerializer
from gateways.models import Gateway


class GatewaySerializer(ModelSerializer):
    # Declared, so that a taken slug is the service's ``slug_taken`` rather than a generic uniqueness error.
    slug = serializers.SlugField(max_length=63)
    port_count = serializers.IntegerField(read_only=True, help_text="Ports in the range (at most 16).")
    ports_used = serializers.IntegerField(read_only=True, help_text="Ports allocated to tasks.")
    ports_free = serializers.IntegerField(read_only=True, help_text="Ports a new task could take.")

    class Meta:
        model = Gateway
        fields = [
            "slug", "name", "description", "address", "scheme", "port_range_start", "port_range_end", "is_active",
            "port_count", "ports_used", "ports_free", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]


class GatewayUpdateSerializer(GatewaySerializer):
    class Meta(GatewaySerializer.Meta):
        fields = ["name", "description", "address", "scheme", "port_range_start", "port_range_end", "is_active"]


class GatewayPortSlotSerializer(serializers.Serializer):
    port = serializers.IntegerField()
    allocated = serializers.BooleanField()
    task_id = serializers.IntegerField(
        allow_null=True, help_text="The task holding the port; null when free or when the task is not yours to see."
    )
    task_name = serializers.CharField(allow_null=True)
    tenant = serializers.CharField(allow_null=True, help_text="Slug of the task's tenant.")
