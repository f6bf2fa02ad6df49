"""Adding newly stored request metrics to their task's hour and day roll-ups and to the usage counters.

Called in the transaction that stored the rows, with only the rows that were new (``insert_new``), so a
re-sent batch adds nothing and a month of a task is always the sum of its stored requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from controlplane.db import accumulate
from telemetry import sketch
from telemetry.choices import Resolution
from telemetry.models import LatencyRollup, RequestMetric, UsageHour
from telemetry.periods import day_of, hour_of

_HISTOGRAMS = ("ttft_hist", "tpot_hist", "itl_hist", "e2e_hist")
_COUNTS = ("requests", "errors", "good", "input_tokens", "output_tokens")
_ROLLUP_FIELDS = (*_COUNTS, *_HISTOGRAMS)
_USAGE_FIELDS = ("requests", "errors", "input_tokens", "output_tokens", "first_request_at", "last_request_at")


@dataclass
class LatencyDelta:
    """Requests counted, and the latencies of the successful ones kept: what they add to a roll-up row, and what
    an exact report over raw rows reads (``telemetry/latency.py``), so both classify a request the same way."""

    requests: int = 0
    errors: int = 0
    good: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    itl: sketch.Histogram = field(default_factory=dict)

    def add(self, row: RequestMetric) -> None:
        self.add_request(row.status, row.ttft_ms, row.tpot_ms, row.e2e_ms, row.itl_hist, row.good,
                         row.input_tokens, row.output_tokens)  # fmt: skip

    def add_request(self, status, ttft, tpot, e2e, itl_hist, good, input_tokens, output_tokens) -> None:
        self.add_counts(1, status >= 400, good, input_tokens, output_tokens)
        if status >= 400:
            return
        if ttft is not None:
            self.ttft.append(ttft)
        if tpot is not None:
            self.tpot.append(tpot)
        self.e2e.append(e2e)
        sketch.merge(self.itl, itl_hist)

    def add_counts(self, requests, errors, good, input_tokens, output_tokens) -> None:
        self.requests += requests
        self.errors += errors
        self.good += good
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens

    def __call__(self, rollup: LatencyRollup) -> None:
        for name in _COUNTS:
            setattr(rollup, name, getattr(rollup, name) + getattr(self, name))
        sketch.merge(rollup.ttft_hist, sketch.histogram(self.ttft))
        sketch.merge(rollup.tpot_hist, sketch.histogram(self.tpot))
        sketch.merge(rollup.e2e_hist, sketch.histogram(self.e2e))
        sketch.merge(rollup.itl_hist, self.itl)


@dataclass
class UsageDelta:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    first: object = None
    last: object = None

    def add(self, row: RequestMetric) -> None:
        self.requests += 1
        self.errors += row.status >= 400
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.first = row.started_at if self.first is None else min(self.first, row.started_at)
        self.last = row.started_at if self.last is None else max(self.last, row.started_at)

    def __call__(self, usage: UsageHour) -> None:
        usage.requests += self.requests
        usage.errors += self.errors
        usage.input_tokens += self.input_tokens
        usage.output_tokens += self.output_tokens
        usage.first_request_at = min(filter(None, (usage.first_request_at, self.first)))
        usage.last_request_at = max(filter(None, (usage.last_request_at, self.last)))


def roll_up(*, tenant_id: int, task_id: int, rows: Iterable[RequestMetric]) -> None:
    latency: dict[tuple, LatencyDelta] = {}
    usage: dict[tuple, UsageDelta] = {}
    for row in rows:
        latency.setdefault((Resolution.HOUR.value, hour_of(row.started_at)), LatencyDelta()).add(row)
        latency.setdefault((Resolution.DAY.value, day_of(row.started_at)), LatencyDelta()).add(row)
        usage.setdefault((row.api_key_id, hour_of(row.started_at)), UsageDelta()).add(row)
    accumulate(LatencyRollup, ("resolution", "start"), latency, _ROLLUP_FIELDS, tenant_id=tenant_id, task_id=task_id)
    accumulate(UsageHour, ("api_key_id", "hour"), usage, _USAGE_FIELDS, tenant_id=tenant_id, task_id=task_id)
