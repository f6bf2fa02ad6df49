import django_filters
from django.db.models import Q

from gateways.choices import Scheme
from gateways.models import Gateway


class GatewayFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search id, name, description and address")
    scheme = django_filters.ChoiceFilter(choices=Scheme.choices)
    has_free_ports = django_filters.BooleanFilter(method="filter_has_free_ports", label="At least one port free")

    class Meta:
        model = Gateway
        fields = ["q", "scheme", "is_active", "has_free_ports"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(slug__icontains=value)
            | Q(name__icontains=value)
            | Q(description__icontains=value)
            | Q(address__icontains=value)
        )

    def filter_has_free_ports(self, queryset, name, value):
        return queryset.filter(ports_free__gt=0) if value else queryset.filter(ports_free__lte=0)
