"""``X-Request-Id``: every response names the request it answers, and every log line written meanwhile does too.

The id is the caller's own ``X-Request-Id`` when it is a plain token (an Ingress or a client tracing its calls
sets one), else a new random one. Only letters, digits and ``._:-`` are taken from a caller, at most 128, so an
id can never forge a log line.
"""

from __future__ import annotations

import re
import uuid

from controlplane.logging import current_request_id

_CALLER_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HEADER = "X-Request-Id"


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get(HEADER, "")
        request.id = given if _CALLER_ID.fullmatch(given) else uuid.uuid4().hex
        token = current_request_id.set(request.id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = request.id
        return response
