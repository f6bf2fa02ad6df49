"""The audit log: tenant admins read their tenants' entries, platform admins all."""

from __future__ import annotations

import json

from controlplane.console.forms import tenants_for
from tenancy import selectors
from tenancy.choices import Action
from tenancy.filtersets import AuditEntryFilterSet
from tenancy.views.base import FilteredListView, TenantAdminMixin


class AuditListView(TenantAdminMixin, FilteredListView):
    template_name = "tenancy/audit_list.html"
    filterset_class = AuditEntryFilterSet
    title = "Audit log"

    def base_queryset(self):
        return selectors.audit_list_queryset().restrict(self.request.user, Action.MANAGE)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        entries = list(context["object_list"])
        for entry in entries:
            entry.changes = audit_changes(entry.before, entry.after)
        context["entries"] = entries
        context["tenants"] = tenants_for(self.request.user, Action.MANAGE)
        context["actions"] = self.base_queryset().order_by("action").values_list("action", flat=True).distinct()
        return context


def _compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def audit_changes(before: dict | None, after: dict | None) -> list[tuple[str, str, str]]:
    """``(field, before, after)`` of an entry as compact JSON; "" where a side has no value (a creation has
    no before, a deletion no after). Updates store only the fields that changed."""
    before, after = before or {}, after or {}
    return [
        (key, _compact(before[key]) if key in before else "", _compact(after[key]) if key in after else "")
        for key in sorted(before.keys() | after.keys())
    ]
