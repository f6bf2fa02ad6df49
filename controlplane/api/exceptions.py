"""One JSON shape for every API error: ``{"code": ..., "message": ..., "fields": {...}}``.

``fields`` maps a request field to its messages; it is empty when the error is not about one field. The shape
holds for answers DRF never sees, too: a URL under ``/api/`` that matches no route is a JSON 404 (``not_found``),
and an unexpected failure a JSON 500 (``server_error``) quoting the request id under which its traceback was
logged (``controlplane/request_id.py``); the console keeps its HTML pages for both.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from controlplane.errors import PlatformRuleError

API_PREFIX = "/api/"

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "fields": fields or {}}


def is_api_request(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def bad_request(request, exception):
    """``handler400``: a request Django itself refused (a malformed body, too many fields)."""
    if is_api_request(request):
        return JsonResponse(error_body("invalid", _request_refusal(exception)), status=400)
    return defaults.bad_request(request, exception)


# Django's refusals whose text is about the request's own limits, fit to show; any other (a host not allowed, say)
# answers a plain sentence, so that no setting is echoed to whoever sent it.
_TOLD_AS_IS = (TooManyFieldsSent, TooManyFilesSent, BadRequest)


def _request_refusal(exception) -> str:
    if isinstance(exception, _TOLD_AS_IS) and str(exception):
        return str(exception)
    return "The request is malformed."


def not_found(request, exception):
    """``handler404``: no route matched (DRF answers its own views' 404s)."""
    if is_api_request(request):
        return JsonResponse(error_body("not_found", "Nothing is at this address."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """``handler500``: the traceback is logged by Django under the request's id; the caller gets the id."""
    if not is_api_request(request):
        return defaults.server_error(request)
    request_id = getattr(request, "id", None)
    body = error_body("server_error", f"The server failed to answer; quote request id {request_id} when you report it.")
    return JsonResponse({**body, "request_id": request_id}, status=500)


def field_messages(detail: Any, path: str = "") -> dict[str, list[str]]:
    """DRF's tree of errors as ``{path: [messages]}``: a nested field is named by its path in the body, as a client
    wrote it (``records[2].task_id``, ``parameters.temperature``), so every value of ``fields`` is a list of text."""
    if isinstance(detail, dict):
        found: dict[str, list[str]] = {}
        for key, value in detail.items():
            where = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
            found.update(field_messages(value, where))
        return found
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        found = {}
        for index, item in enumerate(detail):
            found.update(field_messages(item, f"{path}[{index}]"))
        return found
    messages = [str(item) for item in detail] if isinstance(detail, list) else [str(detail)]
    return {path or "non_field_errors": messages} if messages else {}


def _first_message(fields: dict[str, list[str]]) -> str:
    for name, messages in fields.items():
        label = "" if name == "non_field_errors" else f"{name}: "
        return f"{label}{messages[0]}"
    return "The request is invalid."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PlatformRuleError):
        fields = {exc.field: [exc.message]} if exc.field else {}
        return Response(error_body(exc.code, exc.message, fields), status=status.HTTP_400_BAD_REQUEST)
    if not isinstance(exc, exceptions.APIException):
        # What Django refuses while reading a body: too large, too many fields, a malformed multipart body.
        if isinstance(exc, RequestDataTooBig):
            message = f"The body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes this operation reads."
            return Response(error_body("request_too_large", message), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if isinstance(exc, SuspiciousOperation | BadRequest):
            return Response(error_body("invalid", _request_refusal(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, ObjectDoesNotExist):
        # The view found the object, then a concurrent request removed it before this one took its lock: a
        # service re-reads the row under the lock, and a row that is gone is the 404 a moment later would be.
        logger.info("%s %s: %s", context["request"].method, context["request"].path, exc)
        exc = exceptions.NotFound("It was removed while this request was being answered.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = field_messages(detail)
        response.data = error_body("invalid", _first_message(fields), fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if not isinstance(code, str):
            code = "error"
        response.data = error_body(code, str(detail))
    return response
