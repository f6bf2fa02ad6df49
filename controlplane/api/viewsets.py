"""The base of every API viewset: tenant-scoped reads, role-checked writes, services for every write.

A viewset states

* ``write_action``: what a write needs: ``"operate"`` (tenant admin or member), ``"manage"`` (tenant admin)
  or ``"platform"`` (platform admin);
* ``tenant_of(obj)``: the tenant id an object belongs to (None for platform-wide objects).

Reads go through ``Model.objects.restrict(user, "view")``, so another tenant's object is a 404. A write on
an object the caller can see but may not change is a 403.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, status, viewsets
from rest_framework.response import Response

from tenancy.choices import Action
from tenancy.permissions import user_can, user_can_anywhere


class RoleWritePermission(permissions.BasePermission):
    message = "Your role does not allow this change."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        if getattr(view, "detail", False):
            # Decided per object once it is found: an object the caller cannot see must answer 404, not 403.
            # Every detail route fetches its object with get_object(), which runs has_object_permission.
            return True
        return user_can_anywhere(request.user, view.action_requirement())

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return user_can(request.user, view.action_requirement(), view.tenant_of(obj))

    @staticmethod
    def may_refuse(method: str) -> bool:
        """Whether some caller gets a 403 here (the schema documents it: ``controlplane/api/schema.py``)."""
        return method not in permissions.SAFE_METHODS


class RoleReadPermission(permissions.BasePermission):
    """Reads need the viewset's ``read_action`` in at least one tenant. API keys and the audit log are for
    tenant admins: a member or viewer is told so (403) rather than shown an empty list."""

    message = "Your role does not allow reading these."

    def has_permission(self, request, view) -> bool:
        # Every method: what a role may not read, it may not change either (403 for the whole endpoint).
        user = request.user
        return bool(user and user.is_authenticated) and user_can_anywhere(user, view.read_action)

    @staticmethod
    def may_refuse(method: str) -> bool:
        return True


class ServiceWritesMixin:
    """Writes validated by a shape serializer, performed by a service, answered in the read shape."""

    def validated(self, serializer_class=None, *, partial: bool = False) -> dict[str, Any]:
        """The request's body, checked by ``serializer_class``; a PATCH is partial (what it leaves out stays)."""
        serializer_class = serializer_class or self.get_serializer_class()
        partial = partial or self.request.method == "PATCH"
        serializer = serializer_class(data=self.request.data, partial=partial, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def respond(self, obj, status_code: int = status.HTTP_200_OK, serializer_class=None) -> Response:
        """``obj`` as a list shows it (re-read with the list's annotations)."""
        fresh = self.base_queryset().get(pk=obj.pk)
        serializer_class = serializer_class or self.serializer_class
        return Response(serializer_class(fresh, context=self.get_serializer_context()).data, status=status_code)


class RestrictedViewSetMixin(ServiceWritesMixin):
    """Scoping and permissions shared by the model viewsets."""

    permission_classes = [RoleWritePermission]
    write_action: str = Action.OPERATE
    #: Per-action overrides of ``write_action``, e.g. ``{"rotate": "manage"}``.
    action_requirements: dict[str, str] = {}
    read_action: str = Action.VIEW

    def action_requirement(self) -> str:
        return self.action_requirements.get(self.action, self.write_action)

    def tenant_of(self, obj) -> int | None:
        return getattr(obj, "tenant_id", None)

    def base_queryset(self):
        return self.queryset.all()

    def get_queryset(self):
        return self.base_queryset().restrict(self.request.user, self.read_action)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["write_action"] = self.action_requirement()
        return context


class RestrictedModelViewSet(RestrictedViewSetMixin, viewsets.ModelViewSet):
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]


class RestrictedReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass
