"""Tenants and their quotas: platform admins only (404 for anyone else)."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

from django.db.models import F, Sum
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from controlplane.console.views import PlatformAdminMixin, ServiceFormView
from telemetry.models import RequestMetric
from tenancy import selectors, services
from tenancy.filtersets import TenantFilterSet
from tenancy.forms import TenantCreateForm, TenantUpdateForm
from tenancy.models import Tenant
from tenancy.views.base import FilteredListView


class TenantListView(PlatformAdminMixin, FilteredListView):
    template_name = "tenancy/tenant_list.html"
    filterset_class = TenantFilterSet
    title = "Tenants"

    def base_queryset(self):
        return selectors.tenant_list_queryset().order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenants = list(context["object_list"])
        tokens = tokens_last_minute([tenant.pk for tenant in tenants])
        for tenant in tenants:
            tenant.tokens_last_minute = tokens.get(tenant.pk, 0)
        context["tenants"] = tenants
        return context


def tokens_last_minute(tenant_ids: list[int]) -> dict[int, int]:
    """Input + output tokens of the last 60 seconds per tenant, counted as ``telemetry.selectors.
    tokens_per_minute`` counts ``last_minute``, for a whole page of tenants in one query."""
    if not tenant_ids:
        return {}
    since = timezone.now() - timedelta(minutes=1)
    rows = (
        RequestMetric.objects.filter(tenant_id__in=tenant_ids, started_at__gt=since)
        .values("tenant_id")
        .annotate(tokens=Sum(F("input_tokens") + F("output_tokens")))
    )
    return {row["tenant_id"]: row["tokens"] or 0 for row in rows}


class TenantCreateView(PlatformAdminMixin, ServiceFormView):
    form_class = TenantCreateForm
    title = "New tenant"
    submit_label = "Create tenant"
    success_message = "Tenant {result.slug} created."

    def perform(self, form):
        return services.tenant_create(actor=self.request.user, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:tenant-list")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["intro"] = "A tenant is an isolated organisation with its own members, models, tasks and quotas."
        context["cancel_url"] = reverse("console:tenant-list")
        return context


class TenantEditView(PlatformAdminMixin, ServiceFormView):
    form_class = TenantUpdateForm
    submit_label = "Save quotas"
    success_message = "Tenant {result.slug} saved."

    @cached_property
    def tenant(self) -> Tenant:
        return get_object_or_404(selectors.tenant_list_queryset(), slug=self.kwargs["slug"])

    def get_initial(self):
        return {name: getattr(self.tenant, name) for name in TenantUpdateForm.base_fields}

    def perform(self, form):
        return services.tenant_update(actor=self.request.user, tenant=self.tenant, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:tenant-list")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.tenant
        context["title"] = f"Tenant {tenant.slug}"
        context["intro"] = (
            f"Now in use: {tenant.tasks_used} inference tasks and {tenant.compute_units_used} compute units. "
            "A quota cannot be set below what the tenant already uses."
        )
        context["cancel_url"] = reverse("console:tenant-list")
        return context
