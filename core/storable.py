"""What the database can hold, as plain checks on values any caller may send.

PostgreSQL refuses some values that Python and JSON accept, and it refuses them with an error in the middle of
a query, where the caller's mistake would read as a server fault (a 500). These checks find such values before
they reach a query, and say what is wrong in the caller's terms:

* text: no NUL character (``\\x00``) in ``text``, ``varchar`` or ``jsonb``, and no unpaired UTF-16 surrogate,
  which has no UTF-8 form;
* numbers: JSON allows ``1e999``, which Python reads as infinity, and Python's JSON reads ``NaN``; ``jsonb``
  holds neither;
* instants: PostgreSQL takes UTC offsets up to ±15:59, while RFC 3339 allows up to ±23:59. An instant is
  therefore stored as UTC (the same instant), and one that UTC cannot express within years 1–9999 is refused;
* integers: an ``int`` column holds 32 bits, ``bigint`` 64, while a JSON number may be any size. Those are
  bounded by the fields that parse them (the range Django's model fields declare); a lookup beyond any
  column's range finds nothing.

``controlplane/api/guard.py`` and ``web/parsers.py`` apply them to every request (path, query, body); the
FilterSets' time filters (``core/filters.py``) and the ingest checks (``telemetry/ingest.py``) use them for values
whose type they know.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
NUL_MESSAGE = "Null characters are not allowed."
SURROGATE_MESSAGE = "Unpaired surrogate characters (U+D800 to U+DFFF) are not allowed."
NON_FINITE_MESSAGE = "Numbers must be finite (no NaN or Infinity)."
INSTANT_MESSAGE = "The time must fall within the years 1 to 9999 in UTC."


def text_problem(value: str) -> str | None:
    """Why no text column can hold ``value``, or None when one can."""
    found = _UNSTORABLE_CHARACTER.search(value)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def value_problem(value: Any) -> str | None:
    """Why no column can hold this one value (a string or a number), or None."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return NON_FINITE_MESSAGE
    return None


def find_unstorable(data: Any, path: str = "") -> tuple[str, str] | None:
    """The first place in ``data`` (what JSON parses: dicts, lists, strings, numbers) that no column can hold,
    as ``(path, message)`` with a path like ``messages[0].content``; None when every value fits.

    Iterative, so that a body nested as deep as the JSON parser allows cannot exhaust the stack here, and a path
    is spelled out only for the value it reports: each entry keeps the key it was reached by and its parent's."""
    pending: list[tuple[Any, tuple | None]] = [(data, None)]  # (value, (key, parent link) | None)
    while pending:
        value, link = pending.pop()
        if isinstance(value, dict):
            for key in value:
                problem = value_problem(key)  # a key is stored too (JSON columns)
                if problem:
                    return _spelled(path, (key, link)), problem
            pending.extend((item, (key, link)) for key, item in reversed(value.items()))
        elif isinstance(value, list | tuple):
            pending.extend((item, (index, link)) for index, item in reversed(list(enumerate(value))))
        else:
            problem = value_problem(value)
            if problem:
                return _spelled(path, link), problem
    return None


def _spelled(path: str, link: tuple | None) -> str:
    keys = []
    while link is not None:
        key, link = link
        keys.append(key)
    for key in reversed(keys):
        path = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
    return path


def find_unstorable_pair(items) -> tuple[str, str] | None:
    """The first ``(name, value)`` pair (a query parameter, a form field) whose name or value no column can
    hold, as ``(name, message)``."""
    for name, value in items:
        found = find_unstorable([name, value])
        if found is not None:
            return name, found[1]
    return None


def shown(name: str) -> str:
    """A name fit to echo back in an error: the characters that are the problem are written as escapes."""
    return "".join(f"\\u{ord(c):04x}" if text_problem(c) else c for c in name)


def storable_instant(moment: datetime) -> datetime:
    """``moment`` as UTC, the form it is stored in; ValueError when UTC cannot express it (0001-01-01T00:00+01:00
    is in year 0). A naive ``moment`` is returned as it is: the caller's time zone rules decide what it means."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(INSTANT_MESSAGE) from None
