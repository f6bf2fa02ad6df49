"""Console pages of compute pools: a platform admin's list, create, edit and detail (grants to tenants, the
nodes the last inventory saw). Every page is a platform page: 404 for tenant users."""

from __future__ import annotations

from functools import cached_property

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.generic import ListView

from compute_pools import selectors, services
from compute_pools.filtersets import ComputePoolFilterSet
from compute_pools.forms import ComputePoolCreateForm, ComputePoolUpdateForm, PoolGrantForm, PoolGrantShareForm
from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from controlplane.console.views import PAGE_SIZE, PlatformAdminMixin, ServiceActionView, ServiceFormView


class PoolListView(PlatformAdminMixin, ListView):
    template_name = "compute_pools/pool_list.html"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        pools = selectors.compute_pool_list_queryset().order_by("name")
        self.filterset = ComputePoolFilterSet(self.request.GET, queryset=pools)
        return self.filterset.qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["title"] = "Compute pools"
        context["filters"] = self.request.GET
        context["accelerator_types"] = AcceleratorType.objects.order_by("name")
        return context


class PoolCreateView(PlatformAdminMixin, ServiceFormView):
    form_class = ComputePoolCreateForm
    title = "New compute pool"
    submit_label = "Create pool"
    success_message = "Compute pool {result.slug} created. Grant it to the tenants that may use it."

    def perform(self, form):
        return services.compute_pool_create(actor=self.request.user, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:pool-detail", args=[result.slug])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["intro"] = "A compute pool is a set of nodes with one kind of card, chosen by their labels."
        context["cancel_url"] = reverse("console:pool-list")
        return context


class PoolEditView(PlatformAdminMixin, ServiceFormView):
    form_class = ComputePoolUpdateForm
    submit_label = "Save pool"
    success_message = "Compute pool {result.slug} saved."

    @cached_property
    def pool(self) -> ComputePool:
        return get_object_or_404(selectors.compute_pool_list_queryset(), slug=self.kwargs["slug"])

    def get_initial(self):
        return {name: getattr(self.pool, name) for name in ComputePoolUpdateForm.base_fields}

    def perform(self, form):
        return services.compute_pool_update(actor=self.request.user, pool=self.pool, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:pool-detail", args=[result.slug])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        pool = self.pool
        context["title"] = f"Compute pool {pool.slug}"
        context["intro"] = (
            f"Tasks hold {pool.used_compute_units} of its {pool.capacity_compute_units} compute units now; "
            "the capacity cannot be set lower than what they hold."
        )
        context["cancel_url"] = reverse("console:pool-detail", args=[pool.slug])
        return context


class PoolDetailView(PlatformAdminMixin, ServiceFormView):
    """The pool, its grants and its nodes; the page's form grants the pool to one more tenant, and a refusal
    (already granted) shows on the tenant field."""

    template_name = "compute_pools/pool_detail.html"
    form_class = PoolGrantForm
    submit_label = "Grant"
    success_message = "Tenant {result.tenant.slug} may now use compute pool {result.pool.slug}."

    @cached_property
    def pool(self) -> ComputePool:
        return get_object_or_404(selectors.compute_pool_list_queryset(), slug=self.kwargs["slug"])

    def perform(self, form):
        return services.pool_grant_create(actor=self.request.user, pool=self.pool, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:pool-detail", args=[self.pool.slug])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["title"] = f"Compute pool {self.pool.slug}"
        context["pool"] = self.pool
        context["grants"] = selectors.pool_grant_list_queryset().filter(pool=self.pool).order_by("tenant__slug")
        return context


class PoolGrantRevokeView(PlatformAdminMixin, ServiceActionView):
    def target(self) -> PoolGrant:
        grants = PoolGrant.objects.select_related("pool", "tenant")
        return get_object_or_404(grants, pk=self.kwargs["pk"], pool__slug=self.kwargs["slug"])

    def perform(self, target) -> str:
        services.pool_grant_delete(actor=self.request.user, grant=target)
        return f"Tenant {target.tenant.slug} may no longer use compute pool {target.pool.slug}."

    def redirect_url(self, target) -> str:
        return reverse("console:pool-detail", args=[target.pool.slug])


class PoolGrantEditView(PlatformAdminMixin, ServiceFormView):
    """Change one tenant's share of the pool; it cannot drop below what the tenant's tasks hold there."""

    form_class = PoolGrantShareForm
    submit_label = "Save share"
    success_message = "Share of tenant {result.tenant.slug} in compute pool {result.pool.slug} saved."

    @cached_property
    def grant(self) -> PoolGrant:
        grants = selectors.pool_grant_list_queryset()
        return get_object_or_404(grants, pk=self.kwargs["pk"], pool__slug=self.kwargs["slug"])

    def get_initial(self):
        return {"max_compute_units": self.grant.max_compute_units}

    def perform(self, form):
        return services.pool_grant_update(actor=self.request.user, grant=self.grant, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return reverse("console:pool-detail", args=[self.grant.pool.slug])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        grant = self.grant
        context["title"] = f"Share of {grant.tenant.slug} in {grant.pool.slug}"
        context["intro"] = f"The tenant's tasks hold {grant.used_compute_units} compute units in this pool now."
        context["cancel_url"] = reverse("console:pool-detail", args=[grant.pool.slug])
        return context
