"""Console pages of gateways: a platform admin's list, create, edit, and the detail page with the port
slots. Every page is a platform page: 404 for tenant users."""

from __future__ import annotations

from functools import cached_property

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import ListView, TemplateView

from controlplane.console.views import PAGE_SIZE, PlatformAdminMixin, ServiceFormView
from gateways import selectors, services
from gateways.constants import MAX_PORTS_PER_GATEWAY
from gateways.filtersets import GatewayFilterSet
from gateways.forms import GatewayCreateForm, GatewayUpdateForm
from gateways.models import Gateway


class GatewayListView(PlatformAdminMixin, ListView):
    template_name = "gateways/gateway_list.html"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        gateways = selectors.gateway_list_queryset().order_by("name")
        self.filterset = GatewayFilterSet(self.request.GET, queryset=gateways)
        return self.filterset.qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["title"] = "Gateways"
        context["filters"] = self.request.GET
        return context


class GatewayCreateView(PlatformAdminMixin, ServiceFormView):
    form_class = GatewayCreateForm
    title = "New gateway"
    submit_label = "Create gateway"
    success_message = "Gateway {result.slug} created with {result.port_count} ports."

    def perform(self, form):
        return services.gateway_create(actor=self.request.user, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:gateway-detail", args=[result.slug])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["intro"] = (
            f"A gateway publishes tasks to their callers: each task takes one port of its range, at most "
            f"{MAX_PORTS_PER_GATEWAY} per gateway. The access URL of a task is scheme://address:port/v1."
        )
        context["cancel_url"] = reverse("console:gateway-list")
        return context


class GatewayEditView(PlatformAdminMixin, ServiceFormView):
    form_class = GatewayUpdateForm
    submit_label = "Save gateway"
    success_message = "Gateway {result.slug} saved."

    @cached_property
    def gateway(self) -> Gateway:
        return get_object_or_404(selectors.gateway_list_queryset(), slug=self.kwargs["slug"])

    def get_initial(self):
        return {name: getattr(self.gateway, name) for name in GatewayUpdateForm.base_fields}

    def perform(self, form):
        return services.gateway_update(actor=self.request.user, gateway=self.gateway, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:gateway-detail", args=[result.slug])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["title"] = f"Gateway {self.gateway.slug}"
        context["intro"] = (
            f"{self.gateway.ports_used} of its ports are held by tasks; the range may move or shrink only around them."
        )
        context["cancel_url"] = reverse("console:gateway-detail", args=[self.gateway.slug])
        return context


class GatewayDetailView(PlatformAdminMixin, TemplateView):
    """The gateway and its port slots: which port each task holds, and which are free."""

    template_name = "gateways/gateway_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        gateway = get_object_or_404(selectors.gateway_list_queryset(), slug=self.kwargs["slug"])
        slots = selectors.gateway_port_slots(gateway, self.request.user)
        context.update(
            title=f"Gateway {gateway.slug}",
            gateway=gateway,
            slots=[(slot, gateway.access_url(slot.port)) for slot in slots],
            max_ports=MAX_PORTS_PER_GATEWAY,
        )
        return context
