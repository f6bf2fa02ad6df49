from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from compute_pools.choices import Mode, Vendor
from tenancy.querysets import PlatformCatalogQuerySet, RestrictedQuerySet


class AcceleratorType(models.Model):
    """A kind of card and what it can do; seeded with SPEC's table, editable by platform admins."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    vendor = models.CharField(max_length=16, choices=Vendor.choices)
    kubernetes_resource_name = models.CharField(
        max_length=253, help_text="The extended resource the vendor's device plugin advertises, e.g. nvidia.com/gpu."
    )
    supports_normal_mode = models.BooleanField(default=True)
    supports_high_performance_mode = models.BooleanField(default=False)
    memory_per_card_gib = models.PositiveIntegerField(
        default=0, help_text="Typical memory of one card; a pool may state its own."
    )

    objects = PlatformCatalogQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def supports_mode(self, mode: str) -> bool:
        return self.supports_high_performance_mode if mode == Mode.HIGH_PERFORMANCE else self.supports_normal_mode


class ComputePoolQuerySet(RestrictedQuerySet):
    """Tenant users see the pools granted to their tenants, read only."""

    def _restrict_to_member(self, user, action: str) -> ComputePoolQuerySet:
        from tenancy.models import Membership

        if action != "view":
            return self.none()
        tenant_ids = Membership.objects.filter(user=user).values("tenant_id")
        return self.filter(pk__in=PoolGrant.objects.filter(tenant_id__in=tenant_ids).values("pool_id"))


class ComputePool(models.Model):
    """A set of nodes with one accelerator type, selected by node labels, with a capacity in compute units
    (cards). Capacity used is the sum of compute units of the tasks that want to run on it."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    accelerator_type = models.ForeignKey(AcceleratorType, on_delete=models.PROTECT, related_name="pools")
    capacity_compute_units = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    memory_per_card_gib = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Memory of one card in this pool; the sizing advisor uses it."
    )
    node_selector = models.JSONField(default=dict, blank=True, help_text="Node labels that select the pool's nodes.")
    tolerations = models.JSONField(default=list, blank=True, help_text="Kubernetes tolerations for the pool's taints.")
    observed_nodes = models.JSONField(
        default=list, blank=True, editable=False,
        help_text="The cluster's nodes matching the selector at the last inventory: name, allocatable cards, ready.",
    )  # fmt: skip
    inventory_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="Time of the last inventory.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ComputePoolQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class PoolGrant(models.Model):
    """A pool authorised for a tenant, optionally capped at a share of its capacity."""

    pool = models.ForeignKey(ComputePool, on_delete=models.CASCADE, related_name="grants")
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="pool_grants")
    max_compute_units = models.PositiveIntegerField(
        null=True, blank=True, help_text="The most compute units this tenant may use in the pool; empty: no cap."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["pool__slug", "tenant__slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "tenant"],
                name="pool_grant_unique_pool_tenant",
                violation_error_message="This pool is already granted to the tenant.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.pool} → {self.tenant}"
