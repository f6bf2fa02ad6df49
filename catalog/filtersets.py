import django_filters
from django.db.models import Q

from catalog.choices import ModelFormat, ModelStatus
from catalog.models import Model, ModelFamily, RuntimeImage
from compute_pools.choices import Mode, Vendor


class ModelFamilyFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search id, name and architecture")

    class Meta:
        model = ModelFamily
        fields = ["q", "architecture", "validated"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(slug__icontains=value) | Q(name__icontains=value) | Q(architecture__icontains=value))


class ModelFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search name and description")
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    family = django_filters.CharFilter(field_name="family__slug")
    status = django_filters.MultipleChoiceFilter(choices=ModelStatus.choices)
    format = django_filters.ChoiceFilter(choices=ModelFormat.choices)

    class Meta:
        model = Model
        fields = ["q", "tenant", "family", "status", "format", "architecture", "encrypted", "compressed"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class RuntimeImageFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search id, name and repository")
    mode = django_filters.ChoiceFilter(choices=Mode.choices)
    vendor = django_filters.ChoiceFilter(choices=Vendor.choices)

    class Meta:
        model = RuntimeImage
        fields = ["q", "mode", "vendor"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(slug__icontains=value) | Q(name__icontains=value) | Q(repository__icontains=value))
