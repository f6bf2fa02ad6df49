import django_filters
from django.db.models import Q

from core.filters import InstantFilter
from tenancy.choices import Role
from tenancy.models import AuditEntry, Membership, PersonalAPIToken, Tenant, TenantAPIKey, User


class TenantFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search id, name and description")

    class Meta:
        model = Tenant
        fields = ["q"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(slug__icontains=value) | Q(name__icontains=value) | Q(description__icontains=value))


class MembershipFilterSet(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    user = django_filters.CharFilter(field_name="user__username")
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["tenant", "user", "role"]


class UserFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search username, email and names")
    is_platform_admin = django_filters.BooleanFilter(field_name="is_superuser")
    tenant = django_filters.CharFilter(field_name="memberships__tenant__slug", distinct=True)

    class Meta:
        model = User
        fields = ["q", "is_active", "is_platform_admin", "tenant"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(username__icontains=value)
            | Q(email__icontains=value)
            | Q(first_name__icontains=value)
            | Q(last_name__icontains=value)
        )


class CredentialFilterSet(django_filters.FilterSet):
    usable = django_filters.BooleanFilter(method="filter_usable", label="Neither revoked nor expired")

    def filter_usable(self, queryset, name, value):
        usable = queryset.usable()
        return usable if value else queryset.exclude(pk__in=usable.values("pk"))


class PersonalAPITokenFilterSet(CredentialFilterSet):
    class Meta:
        model = PersonalAPIToken
        fields = ["usable"]


class TenantAPIKeyFilterSet(CredentialFilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")

    class Meta:
        model = TenantAPIKey
        fields = ["tenant", "usable"]


class AuditEntryFilterSet(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    actor = django_filters.CharFilter(field_name="actor_name")
    action = django_filters.CharFilter(field_name="action")
    object_type = django_filters.CharFilter(field_name="object_type")
    object_id = django_filters.CharFilter(field_name="object_id")
    since = InstantFilter(field_name="created_at", lookup_expr="gte")
    until = InstantFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["tenant", "actor", "action", "object_type", "object_id", "since", "until"]
