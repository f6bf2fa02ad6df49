"""Form plumbing shared by every console form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from controlplane.errors import PlatformRuleError
from tenancy.models import Tenant
from tenancy.querysets import is_platform_admin, tenant_ids_for


def add_rule_error(form: forms.Form, error: PlatformRuleError | ValidationError) -> None:
    """Show a service's refusal on the form: a platform rule on the field it names (keeping its code, which
    the templates print as ``data-code``), a validation error on its fields."""
    if isinstance(error, PlatformRuleError):
        field = error.field if error.field in form.fields else None
        form.add_error(field, ValidationError(error.message, code=error.code))
        return
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return
    form.add_error(None, error)


def tenants_for(user, action: str):
    """The tenants a form may offer ``user`` for ``action`` (every tenant for a platform admin)."""
    if is_platform_admin(user):
        return Tenant.objects.order_by("name")
    return Tenant.objects.filter(pk__in=tenant_ids_for(user, action)).order_by("name")


class TenantChoiceField(forms.ModelChoiceField):
    """Choose among the tenants the user may act in; preselected when there is only one."""

    def __init__(self, user, action: str, **kwargs):
        queryset = tenants_for(user, action)
        super().__init__(queryset=queryset, to_field_name="slug", **kwargs)
        if len(queryset) == 1:
            self.initial = queryset[0].slug
