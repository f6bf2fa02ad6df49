"""Redaction of common personal data in captured reflow text: e-mail addresses, phone numbers, ID numbers.

Patterns are applied in order EMAIL → ID → PHONE, because an 18-digit resident ID also looks like a run of
phone digits and must win. The goal is to scrub the common cases cheaply off the request path (it runs in the
spool writer thread), not to be a complete PII detector: free-form numbers without separators that are neither
long enough to be an ID nor shaped like a phone number are left alone.
"""

from __future__ import annotations

import re
from typing import Any

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

ID_PATTERNS = [
    # Chinese resident ID (18 digits): 6-digit region, birth date 18xx-20xx, 3-digit sequence, digit or X check.
    re.compile(
        r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
    ),
    # US social security number 123-45-6789.
    re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"),
    # Other national-ID-like sequences: 15 to 20 digits in a row (legacy 15-digit IDs, bank cards), optional X.
    re.compile(r"(?<![0-9A-Za-z])\d{15,20}[Xx]?(?![0-9A-Za-z])"),
]

PHONE_PATTERNS = [
    # Chinese mobile: 1[3-9]xxxxxxxxx, optional +86 / 86 prefix and separators 3-4-4.
    re.compile(r"(?<![\d+])(?:\+?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)"),
    # International form: +<country> then 6-14 digits in groups separated by spaces, dashes, dots or parentheses.
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?!\d)"),
    # Landline with area code (010-12345678, (021) 1234 5678) and North-American 555-123-4567 / (555) 123-4567.
    re.compile(r"(?<![\w-])(?:\(0\d{2,3}\)\s?|0\d{2,3}-)\d{3,4}[\s-]?\d{4}(?![\d-])"),
    re.compile(r"(?<![\w-])(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4}(?![\d-])"),
]


def redact(text: str) -> str:
    """Replace personal data in ``text`` with [EMAIL], [ID] and [PHONE] placeholders."""
    if not text:
        return text
    text = EMAIL.sub("[EMAIL]", text)
    for pattern in ID_PATTERNS:
        text = pattern.sub("[ID]", text)
    for pattern in PHONE_PATTERNS:
        text = pattern.sub("[PHONE]", text)
    return text


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value (messages with list-of-parts content, prompts as lists)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) if k not in ("role", "type", "name") else v for k, v in value.items()}
    return value
