"""Log lines: JSON (``AICP_LOG_FORMAT=json``), one object a line, for a cluster's log collector; or text.

Every record logged while a request is being answered carries that request's ``request_id`` (the
``X-Request-Id`` of its response, ``controlplane/request_id.py``): a JSON line as a field, a text line as a
``[request <id>]`` suffix. A 500's answer quotes the same id, so a report of one leads to its traceback.

Each line holds ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; ``exc_info`` (the formatted
traceback) when an exception is logged, ``stack_info`` when asked for; and every ``extra=`` field whose value
JSON can carry (``status_code`` of ``django.request``, say). Other values are left out rather than turned into
text: Django passes the whole request object, whose headers may carry a credential. Nothing in the control
plane logs a token or key; keep it so, whatever the format.

This module imports nothing of Django: gunicorn's master uses it before Django is set up.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

#: The id of the request this thread (or task) is answering; set by ``RequestIdMiddleware``.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

# The attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _json_value(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry and not key.startswith("_") and _json_value(value):
                entry[key] = value
        # json.dumps escapes newlines inside strings, so a traceback stays on its one line.
        return json.dumps(entry, ensure_ascii=False, allow_nan=False)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records logged while a request is answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class TextFormatter(logging.Formatter):
    """The plain message (with its traceback), and ``[request <id>]`` when it was logged answering one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [request {request_id}]{newline}{rest}"
