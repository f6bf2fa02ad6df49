"""Shapes of the compute-pool API. Serializers check the shape of input only; every rule is in the services."""

from __future__ import annotations

from rest_framework import serializers

from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from controlplane.api.serializers import ModelSerializer
from tenancy.models import Tenant


class AcceleratorTypeSerializer(ModelSerializer):
    # Declared, so that a taken slug is the service's ``slug_taken`` rather than a generic uniqueness error.
    slug = serializers.SlugField(max_length=63)

    class Meta:
        model = AcceleratorType
        fields = [
            "slug", "name", "vendor", "kubernetes_resource_name", "supports_normal_mode",
            "supports_high_performance_mode", "memory_per_card_gib",
        ]  # fmt: skip


class AcceleratorTypeUpdateSerializer(AcceleratorTypeSerializer):
    class Meta(AcceleratorTypeSerializer.Meta):
        fields = [name for name in AcceleratorTypeSerializer.Meta.fields if name != "slug"]


class ComputePoolSerializer(ModelSerializer):
    slug = serializers.SlugField(max_length=63)
    accelerator_type = serializers.SlugRelatedField(slug_field="slug", queryset=AcceleratorType.objects.all())
    node_selector = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="Node labels that select the pool's nodes."
    )
    tolerations = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Kubernetes tolerations for the pool's taints."
    )
    used_compute_units = serializers.IntegerField(
        read_only=True, help_text="Held by the pool's tasks that are not stopped, all tenants together."
    )
    free_compute_units = serializers.IntegerField(read_only=True)

    class Meta:
        model = ComputePool
        fields = [
            "slug", "name", "description", "accelerator_type", "capacity_compute_units", "memory_per_card_gib",
            "node_selector", "tolerations", "used_compute_units", "free_compute_units", "observed_nodes",
            "inventory_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["observed_nodes", "inventory_at", "created_at", "updated_at"]
        # Left out, the memory per card is the accelerator type's (see compute_pool_create).
        extra_kwargs = {"memory_per_card_gib": {"required": False}}


class ComputePoolUpdateSerializer(ComputePoolSerializer):
    class Meta(ComputePoolSerializer.Meta):
        fields = [
            "name", "description", "accelerator_type", "capacity_compute_units", "memory_per_card_gib",
            "node_selector", "tolerations",
        ]  # fmt: skip


class PoolGrantSerializer(ModelSerializer):
    # Only platform admins write grants, so every pool and tenant may be named.
    pool = serializers.SlugRelatedField(slug_field="slug", queryset=ComputePool.objects.all())
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.all())
    used_compute_units = serializers.IntegerField(
        read_only=True, help_text="Held in the pool by this tenant's tasks that are not stopped."
    )

    class Meta:
        model = PoolGrant
        fields = ["id", "pool", "tenant", "max_compute_units", "used_compute_units", "created_at"]
        read_only_fields = ["created_at"]
        # A second grant of the same pool to the same tenant is the service's ``pool_grant_exists``.
        validators = []


class PoolGrantUpdateSerializer(ModelSerializer):
    class Meta:
        model = PoolGrant
        fields = ["max_compute_units"]
        extra_kwargs = {"max_compute_units": {"required": True}}
