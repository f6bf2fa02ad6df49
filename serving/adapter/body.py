"""A request body as the adapter rewrites it: parsed once, and sent on with every value the policy did not replace
as the caller's own bytes.

The task's policy changes a few top-level fields (``model``, the sampling values, ``stream_options``) and the
``messages`` list (a system message put first, or the caller's system messages taken out). A long prompt is almost
all in values it leaves alone. Serialising the whole body again would cost about 3 ms per MiB of CPU on the event
loop, and would rewrite the caller's text: escapes, number formats, key order. So ``RequestBody`` remembers where
each top-level value (and each element of ``messages``) lies in the original text, and ``encode`` copies those
spans for every value that is still the very object it parsed. Only values the policy put in are serialised, as
compact JSON with text as UTF-8 (no ``\\u`` escapes; a lone surrogate, which UTF-8 cannot carry, escaped).

The rule for code that rewrites ``data``: replace a value, never change a parsed value in place (a changed dict
that is still the parsed object would be sent as it arrived).

Duplicate keys read as ``json.loads`` reads them (the last value wins) and are sent once.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")
_SPLICED_LISTS = ("messages",)  # top-level lists whose elements keep their own spans


class RequestBody:
    """``data``: the parsed body (a dict for any body the adapter serves); ``encode()``: the bytes to send on."""

    __slots__ = ("_elements", "_spans", "_text", "data")

    def __init__(self, raw: bytes | bytearray):
        text = raw.decode("utf-8")
        if text.startswith("\ufeff"):  # a byte order mark, which json.loads also accepts
            text = text[1:]
        self._text = text
        self._spans: dict[str, tuple[Any, int, int]] = {}  # key -> (parsed value, start, end)
        self._elements: dict[int, tuple[Any, int, int]] = {}  # id(element) -> (element, start, end)
        start = _WS.match(text).end()
        if not text.startswith("{", start):
            self.data = json.loads(text)  # not an object: the proxy refuses it with the right message
            return
        try:
            self.data = self._object(start)
        except IndexError as exc:  # the text ended inside the object
            raise ValueError("unexpected end of JSON") from exc

    def _object(self, i: int) -> dict:
        text, data = self._text, {}
        i = _WS.match(text, i + 1).end()
        if text[i] == "}":
            i += 1
        else:
            while True:
                if text[i] != '"':
                    raise ValueError(f"expected a key at {i}")
                key, i = scanstring(text, i + 1)
                i = _WS.match(text, i).end()
                if text[i] != ":":
                    raise ValueError(f"expected ':' at {i}")
                i = _WS.match(text, i + 1).end()
                if key in _SPLICED_LISTS and text[i] == "[":
                    value, end = self._list(i)
                else:
                    value, end = _DECODER.raw_decode(text, i)
                data[key] = value
                self._spans[key] = (value, i, end)
                i = _WS.match(text, end).end()
                if text[i] == ",":
                    i = _WS.match(text, i + 1).end()
                    continue
                if text[i] != "}":
                    raise ValueError(f"expected ',' or '}}' at {i}")
                i += 1
                break
        if _WS.match(text, i).end() != len(text):
            raise ValueError(f"extra data at {i}")
        return data

    def _list(self, i: int) -> tuple[list, int]:
        text, items = self._text, []
        i = _WS.match(text, i + 1).end()
        if text[i] == "]":
            return items, i + 1
        while True:
            item, end = _DECODER.raw_decode(text, i)
            items.append(item)
            self._elements[id(item)] = (item, i, end)
            i = _WS.match(text, end).end()
            if text[i] == ",":
                i = _WS.match(text, i + 1).end()
                continue
            if text[i] != "]":
                raise ValueError(f"expected ',' or ']' at {i}")
            return items, i + 1

    def encode(self) -> bytes:
        """The body to send: the caller's bytes for every value still the one parsed, compact JSON for the rest.

        One list of pieces, joined once: a long prompt is copied twice (its slice, the joined text) and encoded."""
        text, out = self._text, []
        for key, value in self.data.items():
            out += (",", dump(key), ":")
            parsed = self._spans.get(key)
            if parsed is not None and parsed[0] is value:
                out.append(text[parsed[1] : parsed[2]])
            elif key in _SPLICED_LISTS and isinstance(value, list):
                out.append("[")
                for i, item in enumerate(value):
                    out += ("," if i else "", self._element(item))
                out.append("]")
            else:
                out.append(dump(value))
        if not out:
            return b"{}"
        out[0] = "{"  # the first key's comma
        out.append("}")
        return "".join(out).encode()

    def _element(self, item: Any) -> str:
        parsed = self._elements.get(id(item))
        if parsed is not None and parsed[0] is item:
            return self._text[parsed[1] : parsed[2]]
        return dump(item)


def dump(value: Any) -> str:
    """Compact JSON with text as UTF-8; escaped only where UTF-8 cannot carry a character (a lone surrogate)."""
    piece = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not piece.isascii():
        try:
            piece.encode()
        except UnicodeEncodeError:
            piece = json.dumps(value, separators=(",", ":"))
    return piece
