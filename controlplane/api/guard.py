"""The guard at the boundary: a request carrying a value no column can hold is answered 400, naming the field,
before any view or query sees it (what "cannot hold" means is ``core/storable.py``).

It looks at every place input arrives, whatever the endpoint:

* path parameters and query parameters: ``InputGuardMiddleware``, for every URL (the console's too);
* request bodies: the API's parsers (``web/parsers.py``, the ``DEFAULT_PARSER_CLASSES``), on the
  data they have just parsed, at any depth, keys included.

The answer is the API's one error shape, with the offending place as the field: ``{"code": "invalid",
"message": "slug: Null characters are not allowed.", "fields": {"slug": ["Null characters are not allowed."]}}``;
a nested body value is named by its path (``messages[0].content``). On a console page the same request gets
the site's plain 400 page. Values of a known type that the database bounds (instants, integers) are checked by
the fields that parse them (DRF's own ``DateTimeField``, which converts to UTC; ``core/filters.py``).
"""

from __future__ import annotations

from django.core.exceptions import BadRequest
from django.http import JsonResponse

from controlplane.api.exceptions import error_body, is_api_request
from core.storable import find_unstorable_pair, shown

# The published schema calls Django's ``pk`` path parameter ``id`` (drf-spectacular's SCHEMA_COERCE_PATH_PK).
PATH_PARAMETER_NAMES = {"pk": "id"}


class InputGuardMiddleware:
    """Path and query parameters no column can hold answer 400 before the view runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        path_parameters = ((PATH_PARAMETER_NAMES.get(name, name), value) for name, value in view_kwargs.items())
        found = find_unstorable_pair(path_parameters) or find_unstorable_pair(
            (name, value) for name, values in request.GET.lists() for value in values
        )
        if found is None:
            return None
        where, message = shown(found[0]), found[1]
        if is_api_request(request):
            return JsonResponse(error_body("invalid", f"{where}: {message}", {where: [message]}), status=400)
        raise BadRequest(f"{where}: {message}")
