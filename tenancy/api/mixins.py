"""Pieces shared by the viewsets of tenancy, compute_pools and gateways."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, status
from rest_framework.response import Response

from tenancy.permissions import user_can_anywhere


class RoleReadPermission(permissions.BasePermission):
    """Reads need the viewset's ``read_action`` in at least one tenant. API keys and the audit log are for
    tenant admins: a member or viewer is told so (403) rather than shown an empty list."""

    message = "Your role does not allow reading these."

    def has_permission(self, request, view) -> bool:
        if request.method not in permissions.SAFE_METHODS:
            return True
        user = request.user
        return bool(user and user.is_authenticated) and user_can_anywhere(user, view.read_action)


class ServiceWritesMixin:
    """Writes validated by a shape serializer, performed by a service, answered in the read shape."""

    def validated(self, serializer_class=None, *, partial: bool = False) -> dict[str, Any]:
        serializer_class = serializer_class or self.get_serializer_class()
        serializer = serializer_class(data=self.request.data, partial=partial, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def respond(self, obj, status_code: int = status.HTTP_200_OK, serializer_class=None) -> Response:
        """``obj`` as a list shows it (re-read with the list's annotations)."""
        fresh = self.base_queryset().get(pk=obj.pk)
        serializer_class = serializer_class or self.serializer_class
        return Response(serializer_class(fresh, context=self.get_serializer_context()).data, status=status_code)
