"""A Django admin whose writes go through the services.

The admin site is one more interface, so it keeps the same rules as the API: a save calls the app's
create/update service (with its locks and its audit entry) and a delete its delete service. The service
runs while the form is validated, so that a refused rule is shown next to its field like any other form
error, and nothing is written. Bulk deletion, which would bypass the delete service, is switched off, and
inlines are for display only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.http import HttpResponseRedirect

from controlplane.errors import PlatformRuleError


class ServiceAdmin(admin.ModelAdmin):
    #: Fields that identify an object and cannot change once it exists (slugs, the tenant of a membership).
    fixed_after_create: tuple[str, ...] = ()

    def service_create(self, actor, data: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def service_update(self, actor, obj: models.Model, changed: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def service_delete(self, actor, obj: models.Model) -> None:
        raise NotImplementedError

    def get_readonly_fields(self, request, obj=None):
        fixed = self.fixed_after_create if obj is not None else ()
        return (*super().get_readonly_fields(request, obj), *fixed)

    def get_inline_instances(self, request, obj=None):
        """Inlines show related rows; on a POST they take no part, so the service's write is the whole save."""
        return [] if request.method == "POST" else super().get_inline_instances(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ServiceForm(form_class):
            def _post_clean(self):
                super()._post_clean()
                if not self.errors:
                    model_admin._write(request, self)

        return ServiceForm

    def _write(self, request, form) -> None:
        data = {name: form.cleaned_data[name] for name in form.fields if name in form.cleaned_data}
        try:
            with transaction.atomic():
                if form.instance.pk is None:
                    obj = self.service_create(request.user, data)
                else:
                    changed = {name: data[name] for name in form.changed_data if name in data}
                    obj = self.service_update(request.user, form.instance, changed)
        except PlatformRuleError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except ValidationError as exc:
            for field, errors in getattr(exc, "error_dict", {NON_FIELD_ERRORS: exc.error_list}).items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.instance = obj

    def save_model(self, request, obj, form, change) -> None:
        """Already saved by the service while the form was validated."""

    def delete_model(self, request, obj) -> None:
        self.service_delete(request.user, obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except PlatformRuleError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.path.rsplit("delete/", 1)[0])

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the admin site shows but never writes (audit entries, port allocations)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
