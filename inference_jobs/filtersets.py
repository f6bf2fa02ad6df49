import django_filters
from django.db.models import Q

from compute_pools.choices import Mode
from core.filters import InstantFilter
from inference_jobs.choices import DesiredState, TaskStatus
from inference_jobs.models import InferenceTask, TaskEvent


class InferenceTaskFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search name, description and served model name")
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    compute_pool = django_filters.CharFilter(field_name="compute_pool__slug")
    gateway = django_filters.CharFilter(field_name="gateway__slug")
    status = django_filters.MultipleChoiceFilter(choices=TaskStatus.choices)
    desired_state = django_filters.ChoiceFilter(choices=DesiredState.choices)
    mode = django_filters.ChoiceFilter(choices=Mode.choices)

    class Meta:
        model = InferenceTask
        fields = [
            "q",
            "tenant",
            "model",
            "compute_pool",
            "gateway",
            "status",
            "desired_state",
            "mode",
            "reflow_enabled",
        ]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(name__icontains=value) | Q(description__icontains=value) | Q(served_model_name__icontains=value)
        )


class TaskEventFilterSet(django_filters.FilterSet):
    since = InstantFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = TaskEvent
        fields = ["level", "reason", "since"]
