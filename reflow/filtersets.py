import django_filters
from django.db.models import Q

from core.filters import InstantFilter
from reflow.choices import Endpoint, ReviewStatus
from reflow.models import ReflowRecord


class ReflowRecordFilterSet(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    task = django_filters.NumberFilter(field_name="task_id")
    api_key = django_filters.NumberFilter(field_name="api_key_id")
    review_status = django_filters.ChoiceFilter(choices=ReviewStatus.choices)
    endpoint = django_filters.ChoiceFilter(choices=Endpoint.choices)
    since = InstantFilter(field_name="started_at", lookup_expr="gte")
    until = InstantFilter(field_name="started_at", lookup_expr="lt")
    q = django_filters.CharFilter(method="search", label="Text in the conversation, the output or the edit")

    class Meta:
        model = ReflowRecord
        fields = ["tenant", "task", "api_key", "review_status", "endpoint", "since", "until", "q"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(messages__icontains=value) | Q(output__icontains=value) | Q(edited_output__icontains=value)
        )
