"""The OpenAPI schema beyond what drf-spectacular infers: the errors every operation can answer, and slug paths.

``AutoSchema`` (the ``DEFAULT_SCHEMA_CLASS``) adds to each operation the error answers its view can give, all in
the one error shape (the ``Error`` component, ``controlplane/api/exceptions.py``), read off the view rather than
listed by hand:

* 400: always. Any value can be refused: a field, a platform rule (its ``code``), or a value no column can
  hold in any parameter, declared or not (``controlplane/api/guard.py``);
* 401: unless the view lets anyone in;
* 403: when one of its permissions can refuse this method (``may_refuse(method)`` on the permission class;
  a permission without it is taken to refuse anything, except DRF's ``AllowAny`` and ``IsAuthenticated``);
* 404: when the path names an object;
* 413 and 415: when the operation takes a body (one too large to read, or in a media type it does not read);
* 429, with ``Retry-After``: when the view is throttled;
* 414: always, without a body. The HTTP server in front of Django (gunicorn; an Ingress) refuses a request line
  it will not read (gunicorn: 4094 bytes) before the application sees it.

Each answer the application gives, success or error, has the ``X-Request-Id`` header
(``controlplane/request_id.py``); the schema says it is always there. A path
parameter that is a slug documents the slug's own pattern, so a client validates it as the body field is.
"""

from __future__ import annotations

from django.db import models
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions

from controlplane.request_id import HEADER as REQUEST_ID_HEADER
from web.errors import ErrorSerializer

SLUG_PATTERN = "^[-a-zA-Z0-9_]+$"  # Django's slug, as the body's slug fields publish it
NOT_REFUSING = (permissions.AllowAny, permissions.IsAuthenticated)
ERROR_DESCRIPTIONS = {
    "400": "The request is invalid: see `fields` for what, or `code` for the platform rule it breaks.",
    "401": "No valid credentials were sent.",
    "403": "Your role does not allow this.",
    "404": "No such object, or one you may not see.",
    "413": "The body is larger than this operation reads.",
    "414": "The URL is longer than the HTTP server reads; it answers before AICP does, without this error body.",
    "415": "The body's media type is not one this operation reads.",
    "429": "Too many requests; wait for `Retry-After` seconds.",
}
REQUEST_ID = {
    "description": "The id under which the server logged this request; quote it when you report a problem.",
    "required": True,
    "schema": {"type": "string"},
}
FROM_THE_HTTP_SERVER = "414"  # answered before the application: no error body, no request id
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}


def may_refuse(permission, method: str) -> bool:
    if hasattr(permission, "may_refuse"):
        return permission.may_refuse(method)
    return not isinstance(permission, NOT_REFUSING)


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        self._document_slug_path(operation)
        error = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}}
        for status in self.error_statuses(operation):
            answer = {"description": ERROR_DESCRIPTIONS[status], "content": error}
            if status == "429":
                answer["headers"] = {"Retry-After": RETRY_AFTER}
            operation["responses"].setdefault(status, answer)
        for answer in operation["responses"].values():
            answer.setdefault("headers", {})[REQUEST_ID_HEADER] = REQUEST_ID
        operation["responses"][FROM_THE_HTTP_SERVER] = {"description": ERROR_DESCRIPTIONS[FROM_THE_HTTP_SERVER]}
        return operation

    def error_statuses(self, operation) -> list[str]:
        view_permissions = self.view.get_permissions()
        statuses = ["400"]
        if not all(isinstance(permission, permissions.AllowAny) for permission in view_permissions):
            statuses.append("401")
        if any(may_refuse(permission, self.method) for permission in view_permissions):
            statuses.append("403")
        if "{" in self.path:
            statuses.append("404")
        if "requestBody" in operation:
            statuses += ["413", "415"]
        if self.view.get_throttles():
            statuses.append("429")
        return statuses

    def _document_slug_path(self, operation) -> None:
        """The lookup parameter of a slug viewset, with the slug field's own pattern and length."""
        lookup = getattr(self.view, "lookup_field", "pk")
        queryset = getattr(self.view, "queryset", None)
        if lookup == "pk" or queryset is None:
            return
        field = queryset.model._meta.get_field(lookup)
        if not isinstance(field, models.SlugField):
            return
        kwarg = getattr(self.view, "lookup_url_kwarg", None) or lookup
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == kwarg:
                parameter["schema"] = {"type": "string", "pattern": SLUG_PATTERN, "maxLength": field.max_length}


class APITokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenancy.authentication.APITokenAuthentication"
    name = "personalAPIToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "aicp_pat_<key id>_<secret>",
            "description": "A personal API token (POST /api/v1/tokens/), sent as `Authorization: Bearer <token>`.",
        }
