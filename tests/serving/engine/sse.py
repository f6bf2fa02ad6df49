"""Reading the engine's SSE streams event by event, as raw JSON (the openai client hides the shape)."""

from __future__ import annotations

import json

import requests

DONE = "[DONE]"


def events(lines) -> list:
    """The ``data:`` payloads of an SSE line iterator: parsed JSON objects, or ``"[DONE]"``."""
    out = []
    for line in lines:
        if line.startswith(b"data: "):
            payload = line[6:].decode()
            out.append(payload if payload == DONE else json.loads(payload))
    return out


def stream(url: str, path: str, body: dict) -> list:
    """POST a streaming request and return all its events."""
    body = {"model": "demo", "stream": True, "stream_options": {"include_usage": True}, **body}
    with requests.post(f"{url}{path}", json=body, stream=True, timeout=60) as resp:
        resp.raise_for_status()
        return events(resp.iter_lines())


def next_event(lines):
    """Block until the next event of an SSE line iterator (``resp.iter_lines()``, made once) and return it."""
    for line in lines:
        if line.startswith(b"data: "):
            return events([line])[0]
    raise AssertionError("the stream ended without another event")
