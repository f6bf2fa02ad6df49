"""Redaction of personal data in captured reflow text: e-mail addresses, ID numbers, phone numbers.

It runs in the spool writer thread on every captured prompt and output (a message may be a MiB), so it must
be cheap on ordinary prose in Chinese and in English, and it must work on Chinese text as typed: numbers
written right after a Chinese character, full-width digits and punctuation from Chinese input methods.

What is replaced, in this order (an 18-digit ID must never turn into a phone plus leftover digits):

``[EMAIL]``
    An ASCII address: local part of ``A-Z a-z 0-9 . _ % + -`` (at most 64 characters, the RFC 5321 limit;
    of a longer run only the last 64 are replaced), ``@``, dot-separated labels of ``A-Z a-z 0-9 -`` ending in a
    top-level domain of two or more letters. Whatever comes before or after (a Chinese character, ``。``)
    does not matter: ``邮箱zhang.san@example.com。`` → ``邮箱[EMAIL]。``. Internationalised addresses
    (non-ASCII local parts or domains, a full-width ``＠``) are out of scope.
``[ID]``
    - A Chinese resident ID: 18 characters, 6-digit region (first digit 1-9), birth date YYYYMMDD (years
      18xx-20xx, month 01-12, day 01-31), 3-digit sequence and a check digit (``0-9``, ``X`` or ``x``)
      verified by ISO 7064 MOD 11-2 (see ``is_resident_id``).
    - Any run of 15-20 digits: legacy 15-digit IDs, bank cards, and 18-digit numbers whose check digit does
      not verify (privacy first: a long number is redacted even when it is not a valid resident ID). But
      17 digits followed by an ``X`` that is not their check digit are not an ID and are left alone.
    - A US social security number ``123-45-6789``.
``[PHONE]``
    - A Chinese mobile ``1[3-9]x xxxx xxxx``, optionally prefixed ``+86``, ``86`` or ``0086``, with spaces or
      dashes between the 3-4-4 groups.
    - An international number: ``+<country code>`` then digit groups separated by one space, dot or dash,
      an area code possibly in parentheses (``+44 (0)20 7946 0958``); at least 7 digits in all, so ``+1 2``
      is not a phone (a longer run of groups is redacted whole, privacy first).
    - A landline with an area code starting with 0: ``010-12345678``, ``(021) 1234 5678``, ``0755-1234567``.
    - A North American number ``(555) 123-4567``, ``555-123-4567``, ``555.123.4567``.

Boundaries: an ASCII letter or digit directly touching a number, on either side, means the number is part of
something else (an order code ``AB13812345678``, a 12-digit run ``138123456789``, a 21-digit trace id) and it
is left alone; so is either half of a decimal number (``3.141592653589793``, ``0.13912345678``), and SSNs,
landlines and North American numbers inside longer dash-joined codes. Anything else may touch a number: a
Chinese character, Chinese or ASCII punctuation, ``_``. Full-width forms count as their ASCII twins:
``１３８１２３４５６７８``, ``（010）``, ``＋86``, ``Ｘ`` (and a full-width letter touching a number keeps it, like
an ASCII one). Not redacted: digit runs without a phone shape (``1234567890``, a 12-digit run), dates and
times (``2026-12-03 10:15``), prices (``¥1,299.00``), version numbers, short numbers, and card numbers
written in groups (``4111 1111 1111 1111``: not a run, and a row of years would look the same).

Why the search is shaped this way: a pattern that begins with a lookbehind or an optional group is tried at
every position of the text by Python's ``re``, which is what made seven such passes cost ~60-180 ms per MiB.
Here every whole-text search begins with something ``re`` can skip to quickly:

- e-mail: a pattern that starts with the literal ``@`` and matches the domain; the local part is then
  matched on the reversed 64 characters before the ``@`` (a forward search ending at it retries each start);
- numbers: one candidate pattern that starts with a digit class: a run of ASCII or full-width digits joined
  by at most two separators (``+ ( ) - .``, space, their full-width twins) holding at least 9 digits (the
  shortest SSN or phone without a country code) or, right after a ``+``, 7 (the shortest international
  phone), and a trailing ``X``/``x``. Most numbers in prose (dates, prices, versions) never get further.
  Only inside such a short window are the specific ID and phone patterns run, with two characters of
  context on each side so that their boundary checks see the neighbours (``search(s, pos)`` lets a
  lookbehind look before ``pos``, but a lookahead cannot see past ``endpos``), on a copy of the window in
  which full-width forms are translated one character to one character into ASCII: offsets in the copy are
  offsets in the text. All these patterns use ``re.ASCII`` (a digit is 0-9 only).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from typing import Any

EMAIL, ID, PHONE = "[EMAIL]", "[ID]", "[PHONE]"

# --- e-mail -----------------------------------------------------------------------------------------------

_LOCAL_PART_MAX = 64
_LOCAL_PART_REVERSED = re.compile(r"[A-Za-z0-9._%+-]+", re.ASCII)  # matched on the reversed text before "@"
_AT_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.ASCII)  # starts with a literal


def _redact_emails(text: str) -> str:
    if "@" not in text:
        return text
    pieces, done = [], 0
    for domain in _AT_DOMAIN.finditer(text):
        at = domain.start()
        local = _LOCAL_PART_REVERSED.match(text[max(done, at - _LOCAL_PART_MAX) : at][::-1])
        if local:
            pieces += (text[done : at - local.end()], EMAIL)
            done = domain.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


# --- number candidates --------------------------------------------------------------------------------------


def _candidate_pattern(digit: str, separator: str, check_x: str, plus: str) -> re.Pattern:
    """A run of digits joined by at most two separators: 9 digits at least, or 7 right after a "+"."""
    more = f"(?:[{separator}]{{0,2}}[{digit}])"
    return re.compile(
        f"[{digit}](?<![{digit}][{digit}])"  # the first digit of a run: starting later only sees less of it
        f"(?:(?<=[{plus}][{digit}]){more}{{6,}}|{more}{{8,}})"
        f"[{check_x}]?"
    )


# With full-width digits, NBSP, ideographic space and （）＋－．; the ASCII one (smaller classes, faster) for
# ASCII-only text, which ``str.isascii`` tells at no cost.
_CANDIDATE = _candidate_pattern(
    "0-9\uff10-\uff19", r" .()+\-\u00a0\u3000\uff08\uff09\uff0b\uff0d\uff0e", "Xx\uff38\uff58", "+\uff0b"
)
_CANDIDATE_ASCII = _candidate_pattern("0-9", r" .()+\-", "Xx", "+")
_LEADS = "+(\uff0b\uff08"  # a candidate starts at a digit; a phone may start one character earlier
_CONTEXT = 2  # characters around a candidate that the boundary checks below look at

# Full-width ASCII (U+FF01-U+FF5E) to ASCII, ideographic space and NBSP to space: one character to one.
_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20, 0x00A0: 0x20}

# --- IDs and phones, run on the ASCII copy of a candidate window ---------------------------------------------

# No ASCII letter or digit touching on the left or on the right, and not the other half of a decimal number
# ("3.141592653589793", "0.13912345678"); the dash forms also refuse a dash (part of a longer code).
_FREE, _END = r"(?<![0-9A-Za-z])(?<![0-9]\.)", r"(?![0-9A-Za-z])(?!\.[0-9])"
_FREE_DASH, _END_DASH = r"(?<![0-9A-Za-z-])(?<![0-9]\.)", r"(?![0-9A-Za-z-])(?!\.[0-9])"

_ID_NUMBER = re.compile(
    "|".join(
        [
            rf"{_FREE}(?:\d{{17}}[Xx]|\d{{15,20}}){_END}",  # resident ID with X (verified), or a long run
            rf"{_FREE_DASH}\d{{3}}-\d{{2}}-\d{{4}}{_END_DASH}",  # US SSN
        ]
    ),
    re.ASCII,
)

_PHONE_NUMBER = re.compile(
    "|".join(
        [
            rf"{_FREE}(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d{{4}}){{2}}{_END}",  # Chinese mobile
            # International: "+", a lookahead that rules out most runs of under 7 digits, then the groups.
            rf"{_FREE}(?<!\+)(?P<intl>\+(?=(?:[ .()-]{{0,2}}\d){{7}})"
            rf"[1-9]\d*+(?:(?:[ .-]|[ .-]?\(\d++\)[ .-]?)\d++)*+){_END}",
            rf"{_FREE_DASH}(?:\(0\d{{2,3}}\) ?|0\d{{2,3}}[ -])\d{{3,4}}[ -]?\d{{4}}{_END_DASH}",  # landline
            rf"{_FREE_DASH}(?:\(\d{{3}}\) ?|\d{{3}}[.-])\d{{3}}[.-]\d{{4}}{_END_DASH}",  # North American
        ]
    ),
    re.ASCII,
)

_RESIDENT_ID = re.compile(r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]", re.ASCII)
_CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"  # indexed by the weighted sum mod 11 (ISO 7064 MOD 11-2)


def is_resident_id(number: str) -> bool:
    """Whether ``number`` (ASCII) is an 18-character Chinese resident ID with a valid check digit."""
    if not _RESIDENT_ID.fullmatch(number):
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _CHECK_WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11] == number[17].upper()


def _is_id(match: re.Match) -> bool:
    number = match.group()
    return number[-1] not in "Xx" or is_resident_id(number)


def _is_phone(match: re.Match) -> bool:
    intl = match.group("intl")  # the lookahead may count digits past where the groups stop: count them
    return intl is None or sum(c.isdigit() for c in intl) >= 7


def _matches(pattern: re.Pattern, window: str, pos: int, end: int, accept: Callable) -> list[tuple[int, int]]:
    """Spans of accepted, non-overlapping matches starting at or after ``pos`` and ending by ``end``.

    After a rejected match the search resumes one character after its start, so that a number inside it is
    still found: "+1 110105194912310021 13812345678" is one international run overlapping an ID, rejected,
    and then the mobile after the ID is found.
    """
    spans = []
    while match := pattern.search(window, pos):
        if match.end() <= end and accept(match):
            spans.append(match.span())
            pos = match.end()
        else:
            pos = match.start() + 1
    return spans


def _window_spans(window: str, pos: int, end: int) -> list[tuple[int, int, str]]:
    """IDs, then phones that overlap no ID, in ``window[pos:end]``; the window has context around it."""
    ids = _matches(_ID_NUMBER, window, pos, end, _is_id)
    if ids and ids[0] == (pos, end):  # the whole candidate is one ID: no phone is left to find
        return [(pos, end, ID)]
    id_ends = [stop for _, stop in ids]  # ascending, like the starts: the IDs do not overlap

    def free_phone(match: re.Match) -> bool:
        start, stop = match.span()
        first_after = bisect.bisect_right(id_ends, start)  # the first ID that ends after the phone starts
        return _is_phone(match) and (first_after == len(ids) or stop <= ids[first_after][0])

    phones = _matches(_PHONE_NUMBER, window, pos, end, free_phone)
    return sorted([(a, b, ID) for a, b in ids] + [(a, b, PHONE) for a, b in phones])


def _redact_numbers(text: str) -> str:
    pieces, done = [], 0
    candidates = _CANDIDATE_ASCII if text.isascii() else _CANDIDATE
    for candidate in candidates.finditer(text):
        start, end = candidate.span()
        if start and text[start - 1] in _LEADS:
            start -= 1
        lo = max(start - _CONTEXT, 0)
        window = text[lo : end + _CONTEXT]
        if not window.isascii():
            window = window.translate(_TO_ASCII)
        for a, b, label in _window_spans(window, start - lo, end - lo):
            pieces += (text[done : lo + a], label)
            done = lo + b
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


# --- public interface ---------------------------------------------------------------------------------------


def redact(text: str) -> str:
    """Replace personal data in ``text`` with [EMAIL], [ID] and [PHONE] placeholders (see the module doc)."""
    if not text:
        return text
    return _redact_numbers(_redact_emails(text))


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value (messages with list-of-parts content, prompts as lists).

    The values of the keys "role", "type" and "name" are kept as they are.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) if k not in ("role", "type", "name") else v for k, v in value.items()}
    return value
