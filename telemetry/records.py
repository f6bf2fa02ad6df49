"""The records an adapter sends, as checked here: one metric record per request (format:
``serving/adapter/metrics.py``) and the engine's load every few seconds (``serving/adapter/engine_load.py``).

Whether a request was *good* (met the task's latency targets, SPEC "latency targets") is decided when it is
stored, against the targets in force then, and kept with the row: changing a task's targets later does not
rewrite what its past requests achieved, and the raw rows and the roll-ups always agree.
"""

from __future__ import annotations

from typing import Any

from inference_jobs.models import InferenceTask
from telemetry.ingest import (
    boolean,
    fraction,
    histogram,
    integer,
    milliseconds,
    optional,
    record_id,
    required,
    same_task,
    text,
    timestamp,
)

_ID_MAX = 2**63 - 1
_COUNT_MAX = 2**31 - 1

METRIC_FIELDS = {
    "id": required(record_id),
    "task_id": required(integer(1, _ID_MAX)),
    "tenant_id": required(integer(1, _ID_MAX)),
    "api_key_id": required(integer(0, _ID_MAX)),
    "started_at": required(timestamp),
    "status": required(integer(100, 599)),
    "stream": optional(boolean, False),
    "ttft_ms": optional(milliseconds),
    "tpot_ms": optional(milliseconds),
    "e2e_ms": required(milliseconds),
    "itl_hist": optional(histogram),
    "chunks": optional(integer(0, _COUNT_MAX), 0),
    "input_tokens": optional(integer(0, _COUNT_MAX), 0),
    "output_tokens": optional(integer(0, _COUNT_MAX), 0),
}


def metric_cross_check(task: InferenceTask):
    owner = same_task(task)

    def run(record: dict[str, Any]) -> dict[str, str]:
        errors = owner(record)
        if record["ttft_ms"] is not None and record["ttft_ms"] > record["e2e_ms"]:
            errors["ttft_ms"] = f"cannot exceed e2e_ms ({record['e2e_ms']})"
        return errors

    return run


def meets_targets(record: dict[str, Any], ttft_target_ms: float, tpot_target_ms: float) -> bool:
    """A request is good when it succeeded, its TTFT is within the TTFT target and its TPOT (when it has two or
    more output tokens) within the TPOT target.

    A non-streamed request shows no first token, only its end: it counts as good when its E2E is within what
    the two targets allow for its output, ``TTFT target + TPOT target × (output tokens − 1)``.
    """
    if record["status"] >= 400:
        return False
    ttft, tpot = record["ttft_ms"], record["tpot_ms"]
    if ttft is None:
        return record["e2e_ms"] <= ttft_target_ms + tpot_target_ms * max(0, record["output_tokens"] - 1)
    return ttft <= ttft_target_ms and (tpot is None or tpot <= tpot_target_ms)


# One instance's engine-load snapshot. A figure the engine does not expose comes as null.
ENGINE_LOAD_FIELDS = {
    "instance": required(text(200, blank=False)),
    "observed_at": required(timestamp),
    "requests_running": optional(integer(0, _COUNT_MAX)),
    "requests_waiting": optional(integer(0, _COUNT_MAX)),
    "kv_cache_usage": optional(fraction),
}
