import django_filters
from django.db.models import Q

from compute_pools.choices import Vendor
from compute_pools.models import AcceleratorType, ComputePool, PoolGrant


class AcceleratorTypeFilterSet(django_filters.FilterSet):
    vendor = django_filters.ChoiceFilter(choices=Vendor.choices)

    class Meta:
        model = AcceleratorType
        fields = ["vendor", "supports_normal_mode", "supports_high_performance_mode"]


class ComputePoolFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search id, name and description")
    accelerator_type = django_filters.CharFilter(field_name="accelerator_type__slug")
    vendor = django_filters.ChoiceFilter(field_name="accelerator_type__vendor", choices=Vendor.choices)

    class Meta:
        model = ComputePool
        fields = ["q", "accelerator_type", "vendor"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(slug__icontains=value) | Q(name__icontains=value) | Q(description__icontains=value))


class PoolGrantFilterSet(django_filters.FilterSet):
    pool = django_filters.CharFilter(field_name="pool__slug")
    tenant = django_filters.CharFilter(field_name="tenant__slug")

    class Meta:
        model = PoolGrant
        fields = ["pool", "tenant"]
