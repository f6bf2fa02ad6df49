from __future__ import annotations

from django.contrib import admin

from controlplane.admin import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin
from gateways import selectors, services
from gateways.models import Gateway, GatewayPort


class PortInline(ReadOnlyInline):
    model = GatewayPort
    fields = ("port", "task", "allocated_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("task")


@admin.register(Gateway)
class GatewayAdmin(ServiceAdmin):
    list_display = ("slug", "name", "address", "port_range_start", "port_range_end", "ports_used", "ports_free",
                    "is_active")  # fmt: skip
    list_filter = ("is_active", "scheme")
    search_fields = ("slug", "name", "address")
    fixed_after_create = ("slug",)
    inlines = (PortInline,)

    def get_queryset(self, request):
        return selectors.gateway_list_queryset()

    @admin.display(ordering="ports_used")
    def ports_used(self, gateway: Gateway) -> int:
        return gateway.ports_used

    @admin.display(ordering="ports_free")
    def ports_free(self, gateway: Gateway) -> int:
        return gateway.ports_free

    def service_create(self, actor, data):
        return services.gateway_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        return services.gateway_update(actor=actor, gateway=obj, **changed)

    def service_delete(self, actor, obj):
        services.gateway_delete(actor=actor, gateway=obj)


@admin.register(GatewayPort)
class GatewayPortAdmin(ReadOnlyAdmin):
    """Ports are allocated and released with their tasks only."""

    list_display = ("gateway", "port", "task", "allocated_at")
    list_filter = ("gateway",)
    list_select_related = ("gateway", "task")
