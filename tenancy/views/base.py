"""What the tenancy pages share: the tenant-admin gate, filtered lists, and writes on an object the user
may see but perhaps not change."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.views.generic import ListView

from controlplane.console.views import PAGE_SIZE, SignedInMixin
from tenancy.choices import Action
from tenancy.permissions import user_can, user_can_anywhere


class TenantAdminMixin(SignedInMixin):
    """Pages for tenant admins (and platform admins). Members and viewers are told no (403), as the API tells
    them for API keys and the audit log."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not user_can_anywhere(request.user, Action.MANAGE):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


class FilteredListView(ListView):
    """A list read through ``base_queryset()`` and narrowed by the API's FilterSet, so both filter alike."""

    filterset_class = None
    paginate_by = PAGE_SIZE
    title = ""

    def base_queryset(self):
        raise NotImplementedError

    def get_queryset(self):
        self.filterset = self.filterset_class(self.request.GET, queryset=self.base_queryset())
        return self.filterset.qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["title"] = self.title
        context["filters"] = self.request.GET
        return context


def writable_object(queryset, user, action: str, **lookup):
    """The object ``user`` may see (404 otherwise) and change with ``action`` (403 otherwise), as the API
    answers: another tenant's object does not exist, a viewer's write is forbidden."""
    obj = get_object_or_404(queryset.restrict(user, Action.VIEW), **lookup)
    if not user_can(user, action, obj.tenant_id):
        raise PermissionDenied
    return obj
