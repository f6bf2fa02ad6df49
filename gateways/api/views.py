from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from controlplane.api.viewsets import RestrictedModelViewSet
from gateways import selectors, services
from gateways.api.serializers import GatewayPortSlotSerializer, GatewaySerializer, GatewayUpdateSerializer
from gateways.filtersets import GatewayFilterSet
from gateways.models import Gateway
from tenancy.permissions import PLATFORM


class GatewayViewSet(RestrictedModelViewSet):
    """Gateways that publish tasks, each with at most 16 ports. Every signed-in user reads them (a task
    names its gateway); platform admins write."""

    queryset = Gateway.objects.all()
    serializer_class = GatewaySerializer
    filterset_class = GatewayFilterSet
    lookup_field = "slug"
    write_action = PLATFORM
    ordering_fields = ["slug", "name", "ports_free", "created_at"]

    def tenant_of(self, obj) -> None:
        return None

    def base_queryset(self):
        return selectors.gateway_list_queryset()

    def get_serializer_class(self):
        return GatewayUpdateSerializer if self.action == "partial_update" else GatewaySerializer

    @extend_schema(request=GatewaySerializer, responses={201: GatewaySerializer})
    def create(self, request, *args, **kwargs):
        gateway = services.gateway_create(actor=request.user, **self.validated())
        return self.respond(gateway, status.HTTP_201_CREATED)

    @extend_schema(request=GatewayUpdateSerializer, responses=GatewaySerializer)
    def partial_update(self, request, *args, **kwargs):
        gateway = self.get_object()
        data = self.validated(partial=True)
        return self.respond(services.gateway_update(actor=request.user, gateway=gateway, **data))

    def destroy(self, request, *args, **kwargs):
        """Refused while tasks are published through the gateway."""
        services.gateway_delete(actor=request.user, gateway=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=GatewayPortSlotSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def ports(self, request, slug=None):
        """Every port of the range and whether it is taken. The task holding a port is named only to a
        caller who may see that task (platform admins: all)."""
        slots = selectors.gateway_port_slots(self.get_object(), request.user)
        return Response(GatewayPortSlotSerializer([asdict(slot) for slot in slots], many=True).data)
