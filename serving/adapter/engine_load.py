"""The engine's load, read from its Prometheus ``/metrics`` and reported to the control plane every few seconds.

Three gauges, with vLLM's names; ``python -m serving.engine`` exposes the same names with the same meaning:

=============================  ====================  ==========================================================
engine gauge                   reported as           over several label sets (vLLM: ``model_name``, ``engine``)
=============================  ====================  ==========================================================
``vllm:num_requests_running``  ``requests_running``  summed: requests in the engine's running batches
``vllm:num_requests_waiting``  ``requests_waiting``  summed: requests queued for a slot
``vllm:kv_cache_usage_perc``   ``kv_cache_usage``    the *largest*, as a fraction 0..1 (vLLM's 1 = 100 %)
=============================  ====================  ==========================================================

Running and waiting requests add up across a data-parallel engine's ranks. KV-cache use does not: each rank has
a cache of its own, and the fullest one is the one about to preempt requests, which an average would hide. The
control plane aggregates its instances the same way (``docs/telemetry.md``). A gauge the engine does not expose is
reported as null; an engine that exposes none of the three, or no ``/metrics`` at all, or an answer that does not
parse, reports nothing, and no caller notices.

Off the request path: one asyncio task scrapes (``timeout_s``, ``Accept-Encoding: identity``, at most
``MAX_METRICS_BYTES``), picks out the three families' lines before parsing them with prometheus_client's text
parser in a worker thread (vLLM's ``/metrics`` holds hundreds of histogram lines that no one here reads, and a
malformed line in one of them must not hide the gauges), then POSTs the snapshot. The next scrape starts
``interval_s`` after the previous one started, so at most one scrape and one POST are in flight at a time.

Wire contract (``POST {ingest.url}engine-load/``, the ingest token as for metric and reflow batches)::

    {"task_id": 7, "records": [{"instance": "chat-7-5d9c8-x2x7q:1", "observed_at": "2026-11-21T10:00:00.000Z",
                                "requests_running": 2, "requests_waiting": 0, "kv_cache_usage": 0.13}]}

``instance`` names this adapter (host name and process id: the pod's name in Kubernetes, a process of the local
orchestrator); the control plane keeps each instance's latest snapshot (by ``observed_at``) and sums the task's.
The answers are the other ingest endpoints' (200; 422 ``ingest_records_rejected`` naming the malformed field; 400,
401, 403, 413). Snapshots are not spooled and never re-sent: one that was not delivered is superseded by the next
one, ``interval_s`` later. Anything but a 2xx is logged once (a warning), until a snapshot is taken again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from serving.adapter.reflow import iso

log = logging.getLogger(__name__)

GAUGES = {
    "vllm:num_requests_running": "requests_running",
    "vllm:num_requests_waiting": "requests_waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
}
MAX_METRICS_BYTES = 8 << 20  # a larger /metrics answer is not read (vLLM's is some hundred kB)
DEFAULT_INTERVAL_S = 5.0
DEFAULT_TIMEOUT_S = 2.0


def default_instance() -> str:
    """This adapter's name in its snapshots: unique among a task's instances, stable across its own restarts in a
    pod (whose host name is the pod's name)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _ours(line: str) -> bool:
    """Whether ``line`` is a sample, ``# HELP`` or ``# TYPE`` line of one of the three gauges.

    Exact names: ``vllm:num_requests_waiting_by_reason`` starts like ``vllm:num_requests_waiting`` but is another
    family (its samples sum to the latter and would count the queue twice).
    """
    if line.startswith("#"):
        parts = line.split(None, 3)
        return len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and parts[2] in GAUGES
    end = len(line)
    for stop in ("{", " ", "\t"):
        found = line.find(stop)
        if 0 <= found < end:
            end = found
    return line[:end] in GAUGES


def parse_engine_load(text: str) -> dict[str, Any] | None:
    """The snapshot's figures from a Prometheus text exposition: ``{"requests_running": int | None,
    "requests_waiting": int | None, "kv_cache_usage": float | None}``; None when none of the three gauges is
    there or the text does not parse."""
    picked = "\n".join(line for line in text.splitlines() if _ours(line))
    if not picked:
        return None
    sums: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(picked + "\n"):
            for sample in family.samples:
                field = GAUGES.get(sample.name)
                if field is None or not math.isfinite(sample.value):
                    continue
                if field == "kv_cache_usage":
                    sums[field] = max(sums.get(field, 0.0), sample.value)
                else:
                    sums[field] = sums.get(field, 0.0) + sample.value
    except (ValueError, TypeError, IndexError):  # what the parser raises on a malformed line
        return None
    if not sums:
        return None
    kv = sums.get("kv_cache_usage")
    return {
        "requests_running": _count(sums.get("requests_running")),
        "requests_waiting": _count(sums.get("requests_waiting")),
        "kv_cache_usage": None if kv is None else round(min(1.0, max(0.0, kv)), 6),
    }


def _count(value: float | None) -> int | None:
    return None if value is None else max(0, round(value))


class EngineLoadReporter:
    """Scrapes ``metrics_url`` every ``interval_s`` and POSTs each snapshot to ``ingest_url`` (see the module
    docstring for the contract)."""

    def __init__(self, session: aiohttp.ClientSession, metrics_url: str, ingest_url: str, token: str, task_id: int,
                 *, instance: str | None = None, interval_s: float = DEFAULT_INTERVAL_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S):  # fmt: skip
        self.session, self.metrics_url, self.ingest_url, self.task_id = session, metrics_url, ingest_url, task_id
        self.instance = instance or default_instance()
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.reported = 0  # snapshots the control plane answered with a 2xx
        self._scrape_problem: str | None = None  # what went wrong with the last scrape, logged once per change
        self._ingest_problem: str | None = None

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.report_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let a surprise end the loop: the next round tries again
                log.exception("engine load: a round failed")
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def report_once(self) -> bool:
        """Scrape once and send what was found; True when the control plane took a snapshot."""
        snapshot = await self.scrape()
        if snapshot is None:
            return False
        return await self.send(snapshot)

    async def scrape(self) -> dict[str, Any] | None:
        """The engine's current load as a snapshot record, or None (the reason is logged when it changes)."""
        observed_at = time.time()
        try:
            text = await self._fetch()
        except (aiohttp.ClientError, TimeoutError, OSError, UnicodeDecodeError) as exc:
            return self._no_snapshot(f"unreachable ({type(exc).__name__}: {exc})")
        if isinstance(text, int):
            return self._no_snapshot(f"answered HTTP {text}")
        if text is None:
            return self._no_snapshot(f"answered more than {MAX_METRICS_BYTES} bytes")
        figures = await asyncio.to_thread(parse_engine_load, text)
        if figures is None:
            return self._no_snapshot("exposes none of " + ", ".join(GAUGES) + " (or does not parse)")
        if self._scrape_problem is not None:
            log.info("engine load: %s answers again", self.metrics_url)
            self._scrape_problem = None
        return {"instance": self.instance, "observed_at": iso(observed_at), **figures}

    async def _fetch(self) -> str | int | None:
        """The body of ``/metrics``; its status when not 200; None when too large."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        # Identity: the session does not decompress (the proxy relays bytes), and vLLM gzips when asked to.
        headers = {"Accept": "text/plain", "Accept-Encoding": "identity"}
        async with self.session.get(self.metrics_url, headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                return resp.status
            if (resp.content_length or 0) > MAX_METRICS_BYTES:
                return None
            body = bytearray()
            async for chunk in resp.content.iter_chunked(64 << 10):
                body += chunk
                if len(body) > MAX_METRICS_BYTES:
                    return None
            return body.decode()

    def _no_snapshot(self, problem: str) -> None:
        if problem != self._scrape_problem:  # an engine without /metrics is normal: say so once, not every round
            log.info("engine load: %s %s; reporting nothing until it does", self.metrics_url, problem)
            self._scrape_problem = problem
        return None

    async def send(self, snapshot: dict[str, Any]) -> bool:
        body = json.dumps({"task_id": self.task_id, "records": [snapshot]}, separators=(",", ":"))
        timeout = aiohttp.ClientTimeout(total=max(self.timeout_s, 5.0))
        try:
            async with self.session.post(self.ingest_url, data=body, headers=self.headers, timeout=timeout) as resp:
                status, answer = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._ingest_failed(f"unreachable ({type(exc).__name__}: {exc})")
            return False
        if status // 100 == 2:
            self.reported += 1
            if self._ingest_problem is not None:
                log.info("engine load: %s takes snapshots again", self.ingest_url)
                self._ingest_problem = None
            return True
        self._ingest_failed(f"answered HTTP {status}: {answer[:300].decode(errors='replace')}")
        return False

    def _ingest_failed(self, problem: str) -> None:
        if self._ingest_problem is None:  # once per outage; the next snapshot is sent anyway
            log.warning("engine load: %s %s; the next snapshots are sent all the same", self.ingest_url, problem)
        self._ingest_problem = problem
