from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from compute_pools import selectors, services
from compute_pools.api.serializers import (
    AcceleratorTypeSerializer,
    AcceleratorTypeUpdateSerializer,
    ComputePoolSerializer,
    ComputePoolUpdateSerializer,
    PoolGrantSerializer,
    PoolGrantUpdateSerializer,
)
from compute_pools.filtersets import AcceleratorTypeFilterSet, ComputePoolFilterSet, PoolGrantFilterSet
from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from controlplane.api.viewsets import RestrictedModelViewSet
from tenancy.permissions import PLATFORM


class AcceleratorTypeViewSet(RestrictedModelViewSet):
    """Kinds of cards and the modes they run. Every signed-in user reads them; platform admins write."""

    queryset = AcceleratorType.objects.all()
    serializer_class = AcceleratorTypeSerializer
    filterset_class = AcceleratorTypeFilterSet
    lookup_field = "slug"
    write_action = PLATFORM
    ordering_fields = ["name", "vendor"]

    def tenant_of(self, obj) -> None:
        return None

    def get_serializer_class(self):
        return AcceleratorTypeUpdateSerializer if self.action == "partial_update" else AcceleratorTypeSerializer

    @extend_schema(request=AcceleratorTypeSerializer, responses={201: AcceleratorTypeSerializer})
    def create(self, request, *args, **kwargs):
        accelerator_type = services.accelerator_type_create(actor=request.user, **self.validated())
        return self.respond(accelerator_type, status.HTTP_201_CREATED)

    @extend_schema(request=AcceleratorTypeUpdateSerializer, responses=AcceleratorTypeSerializer)
    def partial_update(self, request, *args, **kwargs):
        accelerator_type = self.get_object()
        data = self.validated(partial=True)
        updated = services.accelerator_type_update(actor=request.user, accelerator_type=accelerator_type, **data)
        return self.respond(updated)

    def destroy(self, request, *args, **kwargs):
        """Refused while compute pools use the type."""
        services.accelerator_type_delete(actor=request.user, accelerator_type=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ComputePoolViewSet(RestrictedModelViewSet):
    """Compute pools with their capacity and what is used of it. Platform admins write and see every pool;
    tenant users see the pools granted to one of their tenants."""

    queryset = ComputePool.objects.all()
    serializer_class = ComputePoolSerializer
    filterset_class = ComputePoolFilterSet
    lookup_field = "slug"
    write_action = PLATFORM
    ordering_fields = ["slug", "name", "capacity_compute_units", "free_compute_units", "created_at"]

    def tenant_of(self, obj) -> None:
        return None

    def base_queryset(self):
        return selectors.compute_pool_list_queryset()

    def get_serializer_class(self):
        return ComputePoolUpdateSerializer if self.action == "partial_update" else ComputePoolSerializer

    @extend_schema(request=ComputePoolSerializer, responses={201: ComputePoolSerializer})
    def create(self, request, *args, **kwargs):
        pool = services.compute_pool_create(actor=request.user, **self.validated())
        return self.respond(pool, status.HTTP_201_CREATED)

    @extend_schema(request=ComputePoolUpdateSerializer, responses=ComputePoolSerializer)
    def partial_update(self, request, *args, **kwargs):
        pool = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.compute_pool_update(actor=request.user, pool=pool, **data))

    def destroy(self, request, *args, **kwargs):
        """Refused while inference tasks (stopped ones too) belong to the pool; its grants go with it."""
        services.compute_pool_delete(actor=request.user, pool=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PoolGrantViewSet(RestrictedModelViewSet):
    """Which tenants may run tasks on which pool, and with what share. Platform admins write; tenant users
    read their own tenants' grants."""

    queryset = PoolGrant.objects.all()
    serializer_class = PoolGrantSerializer
    filterset_class = PoolGrantFilterSet
    write_action = PLATFORM
    ordering_fields = ["created_at"]

    def base_queryset(self):
        return selectors.pool_grant_list_queryset()

    def get_serializer_class(self):
        return PoolGrantUpdateSerializer if self.action == "partial_update" else PoolGrantSerializer

    @extend_schema(request=PoolGrantSerializer, responses={201: PoolGrantSerializer})
    def create(self, request, *args, **kwargs):
        grant = services.pool_grant_create(actor=request.user, **self.validated())
        return self.respond(grant, status.HTTP_201_CREATED)

    @extend_schema(request=PoolGrantUpdateSerializer, responses=PoolGrantSerializer)
    def partial_update(self, request, *args, **kwargs):
        grant = self.get_object()
        data = self.validated()
        if data:  # a PATCH that changes nothing is answered with the grant as it is
            grant = services.pool_grant_update(actor=request.user, grant=grant, **data)
        return self.respond(grant)

    def destroy(self, request, *args, **kwargs):
        """Refused while the tenant has inference tasks in the pool."""
        services.pool_grant_delete(actor=request.user, grant=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
