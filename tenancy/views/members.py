"""Members of a tenant and their roles: tenant admins for the tenants they admin, platform admins for all.
A tenant always keeps one tenant admin; the service refuses otherwise and the page shows why."""

from __future__ import annotations

from functools import cached_property

from django.db import transaction
from django.urls import reverse

from controlplane.console.forms import tenants_for
from controlplane.console.views import PlatformAdminMixin, ServiceActionView, ServiceFormView
from tenancy import selectors, services
from tenancy.choices import Action, Role
from tenancy.filtersets import MembershipFilterSet
from tenancy.forms import MemberAddForm, MemberRoleForm, NewUserForm
from tenancy.models import Membership
from tenancy.views.base import FilteredListView, TenantAdminMixin, writable_object


class MemberListView(TenantAdminMixin, FilteredListView):
    template_name = "tenancy/member_list.html"
    filterset_class = MembershipFilterSet
    title = "Members"

    def base_queryset(self):
        return (
            selectors.membership_list_queryset()
            .restrict(self.request.user, Action.MANAGE)
            .order_by("tenant__slug", "user__username")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["tenants"] = tenants_for(self.request.user, Action.MANAGE)
        context["roles"] = Role.choices
        return context


class MemberAddView(TenantAdminMixin, ServiceFormView):
    form_class = MemberAddForm
    title = "Add a member"
    submit_label = "Add member"
    success_message = "{result.user.username} is now {result.role} of {result.tenant.slug}."

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_initial(self):
        return {"tenant": self.request.GET.get("tenant")} if self.request.GET.get("tenant") else {}

    def perform(self, form):
        return services.membership_create(actor=self.request.user, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return f"{reverse('console:member-list')}?tenant={result.tenant.slug}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["intro"] = "Give an existing account a role in one of your tenants."
        context["cancel_url"] = reverse("console:member-list")
        return context


class NewUserView(PlatformAdminMixin, ServiceFormView):
    """A new account with a password, and its first membership. Both or neither: a refused membership leaves
    no account behind."""

    form_class = NewUserForm
    title = "New user"
    submit_label = "Create user"
    success_message = "Account {result.user.username} created; it is now {result.role} of {result.tenant.slug}."

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def perform(self, form):
        data = form.cleaned_data
        with transaction.atomic():
            user = services.user_create(
                actor=self.request.user, username=data["username"], email=data["email"], password=data["password"]
            )
            return services.membership_create(
                actor=self.request.user, tenant=data["tenant"], user=user, role=data["role"]
            )

    def success_url_for(self, result) -> str:
        return f"{reverse('console:member-list')}?tenant={result.tenant.slug}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["cancel_url"] = reverse("console:member-list")
        return context


class MemberEditView(ServiceFormView):
    """Change a member's role. The page of one membership, so that a refusal (the last tenant admin) shows
    on the role field; the member list posts its inline role selector here."""

    form_class = MemberRoleForm
    template_name = "tenancy/member_edit.html"
    submit_label = "Change role"
    success_message = "{result.user.username} is now {result.role} of {result.tenant.slug}."

    @cached_property
    def membership(self) -> Membership:
        queryset = selectors.membership_list_queryset()
        return writable_object(queryset, self.request.user, Action.MANAGE, pk=self.kwargs["pk"])

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.membership  # noqa: B018 -- 404 or 403 before anything else, GET included
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {"role": self.membership.role}

    def perform(self, form):
        return services.membership_update(actor=self.request.user, membership=self.membership, **form.cleaned_data)

    def success_url_for(self, result) -> str:
        return f"{reverse('console:member-list')}?tenant={result.tenant.slug}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["membership"] = self.membership
        context["title"] = f"{self.membership.user.username} in {self.membership.tenant.slug}"
        return context


class MemberRemoveView(ServiceActionView):
    def target(self) -> Membership:
        return writable_object(
            selectors.membership_list_queryset(), self.request.user, Action.MANAGE, pk=self.kwargs["pk"]
        )

    def perform(self, target) -> str:
        services.membership_delete(actor=self.request.user, membership=target)
        return f"{target.user.username} is no longer a member of {target.tenant.slug}."

    def redirect_url(self, target) -> str:
        return f"{reverse('console:member-list')}?tenant={target.tenant.slug}"
