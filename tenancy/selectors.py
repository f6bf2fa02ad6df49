"""List reads of the tenancy API: each row's related data and usage in a constant number of queries."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from tenancy.models import AuditEntry, Membership, PersonalAPIToken, Tenant, TenantAPIKey, User


def tenant_list_queryset() -> QuerySet[Tenant]:
    """Tenants annotated with ``tasks_used`` and ``compute_units_used``, counted as admission counts them
    (``inference_jobs.selectors.tenant_usage``), as correlated subqueries rather than one query per row."""
    from inference_jobs.models import InferenceTask
    from inference_jobs.selectors import COMPUTE_UNITS, HOLDS_COMPUTE

    per_tenant = InferenceTask.objects.filter(tenant=OuterRef("pk")).order_by().values("tenant")
    tasks = per_tenant.annotate(total=Count("id")).values("total")
    compute = per_tenant.annotate(total=Sum(COMPUTE_UNITS, filter=HOLDS_COMPUTE)).values("total")
    return Tenant.objects.annotate(
        tasks_used=Coalesce(Subquery(tasks, output_field=IntegerField()), 0),
        compute_units_used=Coalesce(Subquery(compute, output_field=IntegerField()), 0),
    )


def membership_list_queryset() -> QuerySet[Membership]:
    return Membership.objects.select_related("tenant", "user")


def user_list_queryset() -> QuerySet[User]:
    memberships = Membership.objects.select_related("tenant").order_by("tenant__slug")
    return User.objects.order_by("username").prefetch_related(Prefetch("memberships", queryset=memberships))


def personal_token_list_queryset() -> QuerySet[PersonalAPIToken]:
    return PersonalAPIToken.objects.all()


def tenant_api_key_list_queryset() -> QuerySet[TenantAPIKey]:
    return TenantAPIKey.objects.select_related("tenant", "created_by")


def audit_list_queryset() -> QuerySet[AuditEntry]:
    return AuditEntry.objects.select_related("tenant")
