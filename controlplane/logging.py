"""JSON logs (``AICP_LOG_FORMAT=json``): one object a line, for a cluster's log collector.

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
from datetime import UTC, datetime

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
