"""Reflow capture: turn a finished request/response pair into the record the control plane stores.

The adapter's request path hands over bytes only: the body it sent the engine, and the streamed SSE bytes (or the
non-streamed answer) as relayed. Parsing both, taking the output text out of the SSE events and redacting personal
data happen here, in the capture worker process (``capture_worker.py``), never in the adapter's event loop.

Record (one JSON line per request/response pair)::

    {"id": "<uuid4 hex>", "task_id": 7, "tenant_id": 3, "api_key_id": 12, "endpoint": "chat" | "completions",
     "messages": [...] (chat, after system-prompt injection) or the prompt (completions),
     "parameters": {...every request field sent upstream except model/messages/prompt/stream/stream_options},
     "output": "<full output text of choice 0>", "finish_reason": "stop",
     "input_tokens": 25, "output_tokens": 100, "ttft_ms": 85.1, "tpot_ms": 12.3, "status": 200,
     "runtime_image_version": "1.2.0", "started_at": "<ISO 8601 UTC>", "finished_at": "<ISO 8601 UTC>"}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from serving.adapter.redaction import redact, redact_value

_NOT_PARAMETERS = {"model", "messages", "prompt", "stream", "stream_options"}


def parameters_of(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in _NOT_PARAMETERS}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stream_output(raw: list[bytes], chat: bool) -> tuple[str, str | None]:
    """Concatenate choice 0's text from raw SSE bytes; returns (text, finish_reason)."""
    parts: list[str] = []
    finish = None
    for line in b"".join(raw).split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            continue
        try:
            event = json.loads(data)
        except ValueError:
            continue
        for choice in event.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
            if piece:
                parts.append(piece)
            finish = choice.get("finish_reason") or finish
    return "".join(parts), finish


def unary_output(body: Any, chat: bool) -> tuple[str, str | None]:
    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") if chat else choice.get("text")
        return text or "", choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        return "", None


def build_record(meta: dict, request_body: bytes, response: bytes, redact_on: bool) -> dict:
    """The reflow record of one exchange: ``meta`` as the adapter queued it (see ``Adapter._finish``), plus what
    the upstream request and the answer say."""
    record = dict(meta)
    chat = record.pop("chat")
    stream = record.pop("stream")
    sent = json.loads(request_body)
    record["messages"] = sent.get("messages") if chat else sent.get("prompt")
    record["parameters"] = parameters_of(sent)
    if stream:
        output, finish = stream_output([response], chat)
    else:
        try:
            output, finish = unary_output(json.loads(response), chat)
        except ValueError:
            output, finish = "", None
    record["output"] = output
    record["finish_reason"] = finish
    record["started_at"] = iso(record["started_at"])
    record["finished_at"] = iso(record["finished_at"])
    if redact_on:
        record["messages"] = redact_value(record["messages"])
        record["output"] = redact(output)
    return record
