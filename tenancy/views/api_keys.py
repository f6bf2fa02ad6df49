"""A tenant's API keys (for a model's callers): tenant admins only, as in the API. A new key is shown once,
in the answer to the POST that created it."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from controlplane.console.forms import add_rule_error, tenants_for
from controlplane.console.views import ServiceActionView, ServiceFormView
from controlplane.errors import PlatformRuleError
from tenancy import selectors, services
from tenancy.choices import Action
from tenancy.filtersets import TenantAPIKeyFilterSet
from tenancy.forms import ApiKeyCreateForm
from tenancy.models import TenantAPIKey
from tenancy.views.base import FilteredListView, TenantAdminMixin


class ApiKeyListView(TenantAdminMixin, FilteredListView):
    template_name = "tenancy/api_key_list.html"
    filterset_class = TenantAPIKeyFilterSet
    title = "API keys"

    def base_queryset(self):
        return (
            selectors.tenant_api_key_list_queryset()
            .restrict(self.request.user, Action.MANAGE)
            .order_by("-created_at", "-id")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tenants"] = tenants_for(self.request.user, Action.MANAGE)
        context["now"] = timezone.now()
        return context


class ApiKeyCreateView(TenantAdminMixin, ServiceFormView):
    """Create a key and show it in the answer to the POST itself: once, never in a URL, never stored."""

    form_class = ApiKeyCreateForm
    title = "New API key"
    submit_label = "Create key"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def form_valid(self, form):
        try:
            created = services.tenant_api_key_create(actor=self.request.user, **form.cleaned_data)
        except (PlatformRuleError, ValidationError) as error:
            add_rule_error(form, error)
            return self.form_invalid(form)
        context = {"title": "Your new API key", "key": created.credential, "plaintext": created.plaintext}
        response = render(self.request, "tenancy/api_key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["intro"] = (
            "A model's callers send the key as “Authorization: Bearer <key>” at a task's access URL. "
            "It works for every task of the tenant."
        )
        context["cancel_url"] = reverse("console:api-key-list")
        return context


class ApiKeyRevokeView(TenantAdminMixin, ServiceActionView):
    def target(self) -> TenantAPIKey:
        # As the API reads keys: only the tenants one admins; another tenant's key does not exist.
        keys = TenantAPIKey.objects.restrict(self.request.user, Action.MANAGE).select_related("tenant")
        return get_object_or_404(keys, pk=self.kwargs["pk"])

    def perform(self, target) -> str:
        services.credential_revoke(actor=self.request.user, credential=target)
        return f"API key “{target.name}” is revoked; callers using it are refused from now on."

    def redirect_url(self, target) -> str:
        return reverse("console:api-key-list")
