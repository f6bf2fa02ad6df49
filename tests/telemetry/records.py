"""Records shaped as the adapter ships them (serving/adapter/metrics.py, reflow.py, engine_load.py), and a client
that sends them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from rest_framework.test import APIClient


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metric(task, *, at: datetime | None = None, **overrides) -> dict:
    record = {
        "id": uuid.uuid4().hex,
        "task_id": task.pk,
        "tenant_id": task.tenant_id,
        "api_key_id": 12,
        "started_at": iso(at or datetime.now(UTC) - timedelta(minutes=5)),
        "ttft_ms": 120.0,
        "tpot_ms": 20.0,
        "e2e_ms": 120.0 + 20.0 * 9,
        "itl_p50_ms": 20.0,
        "itl_max_ms": 25.0,
        "itl_hist": {"152": 9},
        "chunks": 10,
        "input_tokens": 25,
        "output_tokens": 10,
        "status": 200,
        "stream": True,
    }
    record.update(overrides)
    return record


def reflow_record(task, *, at: datetime | None = None, **overrides) -> dict:
    started = at or datetime.now(UTC) - timedelta(minutes=5)
    record = {
        "id": uuid.uuid4().hex,
        "task_id": task.pk,
        "tenant_id": task.tenant_id,
        "api_key_id": 12,
        "endpoint": "chat",
        "messages": [
            {"role": "system", "content": "You are the task's assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "parameters": {"temperature": 0.7, "max_tokens": 64},
        "output": "Paris.",
        "finish_reason": "stop",
        "input_tokens": 25,
        "output_tokens": 3,
        "ttft_ms": 80.0,
        "tpot_ms": 12.0,
        "status": 200,
        "runtime_image_version": "1.2.0",
        "started_at": iso(started),
        "finished_at": iso(started + timedelta(milliseconds=104)),
    }
    record.update(overrides)
    return record


def engine_load(*, instance: str = "chat-7-abc:1", at: datetime | None = None, **overrides) -> dict:
    """One instance's engine-load snapshot (serving/adapter/engine_load.py)."""
    record = {
        "instance": instance,
        "observed_at": iso(at or datetime.now(UTC) - timedelta(seconds=1)),
        "requests_running": 2,
        "requests_waiting": 0,
        "kv_cache_usage": 0.13,
    }
    record.update(overrides)
    return record


class Adapter:
    """Posts batches to the ingest API as a task's adapter does, with its ingest token."""

    def __init__(self, token: str, task_id: int):
        self.task_id = task_id
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def post(self, kind: str, records: list, task_id: int | None = None):
        body = {"task_id": self.task_id if task_id is None else task_id, "records": records}
        return self.client.generic("POST", f"/api/v1/ingest/{kind}/", json.dumps(body), content_type="application/json")
