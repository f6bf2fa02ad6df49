"""The API's body parsers: DRF's own, each refusing a parsed body that holds a value no column can (the body half
of the guard, ``controlplane/api/guard.py``), as a 400 naming the value's path in the body.

Kept apart from the guard's middleware: DRF reads ``DEFAULT_PARSER_CLASSES`` while its views module loads, so
this module may import nothing that imports DRF's views.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from core.storable import find_unstorable, find_unstorable_pair, shown


def _refuse(found: tuple[str, str] | None) -> None:
    if found is not None:
        where, message = found
        raise ValidationError({shown(where or "body"): [message]})


def check_body(data: Any) -> None:
    """Refuse a parsed body (a JSON document, or a QueryDict of form fields) holding a value no column can."""
    if hasattr(data, "lists"):
        _refuse(find_unstorable_pair((name, value) for name, values in data.lists() for value in values))
    else:
        _refuse(find_unstorable(data))


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # Python's JSON decoder gives up on nesting deeper than its recursion limit
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        check_body(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_body(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """Form fields are checked. Django drops non-printable characters from file names itself, and file contents
    are the files' business."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        check_body(parsed.data)
        return parsed
