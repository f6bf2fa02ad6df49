import django_filters

from core.filters import InstantFilter
from telemetry.models import UsageHour


class AccessLogFilterSet(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    api_key = django_filters.NumberFilter(field_name="api_key_id")
    task = django_filters.NumberFilter(field_name="task_id")
    since = InstantFilter(field_name="hour", lookup_expr="gte")
    until = InstantFilter(field_name="hour", lookup_expr="lt")

    class Meta:
        model = UsageHour
        fields = ["tenant", "api_key", "task", "since", "until"]
