"""The reflow record an adapter sends for each captured pair (format: ``serving/adapter/reflow.py``), as checked
here, and its conversation normalised to chat messages."""

from __future__ import annotations

from typing import Any

from inference_jobs.models import InferenceTask
from reflow.choices import Endpoint
from reflow.constants import MAX_OUTPUT_CHARS
from telemetry.ingest import (
    Invalid,
    integer,
    json_object,
    milliseconds,
    optional,
    record_id,
    required,
    same_task,
    storable_json,
    text,
    timestamp,
)

_ID_MAX = 2**63 - 1
_COUNT_MAX = 2**31 - 1


def endpoint(value: Any) -> str:
    if value not in Endpoint.values:
        raise Invalid(f"must be one of {', '.join(Endpoint.values)}, got {value!r}")
    return value


def anything(value: Any) -> Any:
    return value


REFLOW_FIELDS = {
    "id": required(record_id),
    "task_id": required(integer(1, _ID_MAX)),
    "tenant_id": required(integer(1, _ID_MAX)),
    "api_key_id": required(integer(0, _ID_MAX)),
    "endpoint": required(endpoint),
    "messages": required(anything),  # checked against the endpoint in reflow_cross_check
    "parameters": optional(json_object, {}),
    "output": optional(text(MAX_OUTPUT_CHARS), ""),
    "finish_reason": optional(text(64), ""),
    "input_tokens": optional(integer(0, _COUNT_MAX), 0),
    "output_tokens": optional(integer(0, _COUNT_MAX), 0),
    "ttft_ms": optional(milliseconds),
    "tpot_ms": optional(milliseconds),
    "status": optional(integer(100, 599), 200),
    "runtime_image_version": optional(text(64), ""),
    "started_at": required(timestamp),
    "finished_at": optional(timestamp),
}


def chat_messages(endpoint_name: str, captured: Any) -> list[dict]:
    """The conversation as chat messages: chat requests as sent (system prompt included), a completions prompt
    as one user message (of a list of prompts, the first: the output captured is choice 0's)."""
    if endpoint_name == Endpoint.CHAT:
        if not isinstance(captured, list) or not captured:
            raise Invalid("must be a non-empty list of chat messages")
        for message in captured:
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise Invalid('must be chat messages, each an object with a "role"')
        return storable_json(captured)
    prompt = captured[0] if isinstance(captured, list) and captured else captured
    if not isinstance(prompt, str):
        raise Invalid("must be the completions prompt: a string or a list of strings")
    return storable_json([{"role": "user", "content": prompt}])


def reflow_cross_check(task: InferenceTask):
    owner = same_task(task)

    def run(record: dict[str, Any]) -> dict[str, str]:
        errors = owner(record)
        try:
            record["messages"] = chat_messages(record["endpoint"], record["messages"])
        except Invalid as exc:
            errors["messages"] = str(exc)
        if record["finished_at"] is not None and record["finished_at"] < record["started_at"]:
            errors["finished_at"] = "cannot be before started_at"
        return errors

    return run
