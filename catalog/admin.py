"""The catalogue in Django's admin. Writes go through the catalogue's services (``ServiceAdmin``), so the
admin keeps the API's rules and audit trail. Models arrive by upload only, and runtime image versions are
published through the API: the admin shows them, read only."""

from __future__ import annotations

from django.contrib import admin

from catalog import selectors, services
from catalog.models import Model, ModelFamily, RuntimeImage, RuntimeImageVersion
from controlplane.admin import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin


@admin.register(ModelFamily)
class ModelFamilyAdmin(ServiceAdmin):
    list_display = ("name", "slug", "architecture", "parameter_count", "validated")
    list_filter = ("validated", "architecture")
    search_fields = ("name", "slug", "architecture")
    fixed_after_create = ("slug",)

    def service_create(self, actor, data):
        return services.model_family_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        return services.model_family_update(actor=actor, family=obj, **changed)

    def service_delete(self, actor, obj) -> None:
        services.model_family_delete(actor=actor, family=obj)


@admin.register(Model)
class ModelAdmin(ServiceAdmin):
    """Name, description and family are editable; what the upload stored and inspection found is not."""

    list_display = ("name", "tenant", "family", "status", "format", "parameter_count", "dtype", "size_bytes",
                    "encrypted", "compressed", "created_at")  # fmt: skip
    list_filter = ("status", "format", "encrypted", "compressed", "family")
    search_fields = ("name", "description", "tenant__slug", "architecture")
    fields = ("tenant", "name", "description", "family", "status", "status_message", "format", "architecture",
              "parameter_count", "dtype", "context_length", "size_bytes", "checksum_sha256", "encrypted",
              "compressed", "storage_path", "config", "created_by", "created_at", "updated_at")  # fmt: skip
    readonly_fields = tuple(field for field in fields if field not in services.MODEL_FIELDS)

    def get_queryset(self, request):
        return selectors.model_list_queryset()

    def has_add_permission(self, request) -> bool:
        return False

    def service_update(self, actor, obj, changed):
        return services.model_update(actor=actor, model=obj, **changed)

    def service_delete(self, actor, obj) -> None:
        services.model_delete(actor=actor, model=obj)


class RuntimeImageVersionInline(ReadOnlyInline):
    model = RuntimeImageVersion
    fields = ("version", "digest", "release_notes", "published_at")
    readonly_fields = fields
    ordering = ("-published_at", "-id")
    show_change_link = False


@admin.register(RuntimeImage)
class RuntimeImageAdmin(ServiceAdmin):
    list_display = ("slug", "name", "mode", "vendor", "repository")
    list_filter = ("mode", "vendor")
    search_fields = ("slug", "name", "repository")
    fixed_after_create = ("slug",)
    inlines = (RuntimeImageVersionInline,)

    def service_create(self, actor, data):
        return services.runtime_image_create(actor=actor, **data)

    def service_update(self, actor, obj, changed):
        return services.runtime_image_update(actor=actor, image=obj, **changed)

    def service_delete(self, actor, obj) -> None:
        services.runtime_image_delete(actor=actor, image=obj)


@admin.register(RuntimeImageVersion)
class RuntimeImageVersionAdmin(ReadOnlyAdmin):
    """Published versions across images. Publishing goes through POST /api/v1/runtime-images/{slug}/publish/."""

    list_display = ["image", "version", "digest", "published_at"]
    list_filter = ["image__mode", "image__vendor"]
    search_fields = ["image__slug", "version"]
    list_select_related = ["image"]
