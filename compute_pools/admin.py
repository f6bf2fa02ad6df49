from __future__ import annotations

from django.contrib import admin

from compute_pools import selectors, services
from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from controlplane.admin import ReadOnlyInline, ServiceAdmin


@admin.register(AcceleratorType)
class AcceleratorTypeAdmin(ServiceAdmin):
    list_display = (
        "slug", "name", "vendor", "kubernetes_resource_name", "supports_normal_mode", "supports_high_performance_mode",
    )  # fmt: skip
    list_filter = ("vendor",)
    search_fields = ("slug", "name")
    fixed_after_create = ("slug",)

    def service_create(self, actor, data):
        return services.accelerator_type_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        return services.accelerator_type_update(actor=actor, accelerator_type=obj, **changed)

    def service_delete(self, actor, obj):
        services.accelerator_type_delete(actor=actor, accelerator_type=obj)


class GrantInline(ReadOnlyInline):
    model = PoolGrant
    fields = ("tenant", "max_compute_units", "created_at")
    readonly_fields = fields


@admin.register(ComputePool)
class ComputePoolAdmin(ServiceAdmin):
    list_display = ("slug", "name", "accelerator_type", "capacity_compute_units", "used_compute_units", "free")
    list_filter = ("accelerator_type",)
    search_fields = ("slug", "name")
    fixed_after_create = ("slug",)
    inlines = (GrantInline,)

    def get_queryset(self, request):
        return selectors.compute_pool_list_queryset()

    @admin.display(ordering="used_compute_units", description="used")
    def used_compute_units(self, pool: ComputePool) -> int:
        return pool.used_compute_units

    @admin.display(ordering="free_compute_units", description="free")
    def free(self, pool: ComputePool) -> int:
        return pool.free_compute_units

    def service_create(self, actor, data):
        return services.compute_pool_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        return services.compute_pool_update(actor=actor, pool=obj, **changed)

    def service_delete(self, actor, obj):
        services.compute_pool_delete(actor=actor, pool=obj)


@admin.register(PoolGrant)
class PoolGrantAdmin(ServiceAdmin):
    list_display = ("pool", "tenant", "max_compute_units", "used_compute_units", "created_at")
    list_filter = ("pool", "tenant")
    fixed_after_create = ("pool", "tenant")

    def get_queryset(self, request):
        return selectors.pool_grant_list_queryset()

    @admin.display(ordering="used_compute_units", description="used")
    def used_compute_units(self, grant: PoolGrant) -> int:
        return grant.used_compute_units

    def service_create(self, actor, data):
        return services.pool_grant_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        share = changed.get("max_compute_units", obj.max_compute_units)
        return services.pool_grant_update(actor=actor, grant=obj, max_compute_units=share)

    def service_delete(self, actor, obj):
        services.pool_grant_delete(actor=actor, grant=obj)
