"""Per-request latency and token metrics: Prometheus collectors and the metric record shipped to ingest.

Definitions (SPEC "Performance metrics"), all measured at the adapter:

* TTFT: request arrival → the first upstream chunk carrying non-empty content (streaming only).
* ITL: gap between consecutive streamed chunks after the first content chunk (one "chunk" is one read from
  the upstream socket, which is one SSE event unless the engine batches events).
* E2E: request arrival → the last byte written to the caller.
* TPOT: (E2E − TTFT) / (output tokens − 1), only when there are at least two output tokens.
* Tokens come from the engine's ``usage`` (the adapter always asks for it when streaming); only when an
  engine sends no usage are output tokens estimated as the number of content chunks.

Non-streaming requests have no observable first token: their ``ttft_ms``/``tpot_ms`` are null and they feed
only the E2E histogram.

The metric record (one per request, JSON)::

    {"id": "<uuid4 hex>", "task_id": 7, "tenant_id": 3, "api_key_id": 12, "started_at": "<ISO 8601 UTC>",
     "ttft_ms": 85.1, "tpot_ms": 12.3, "e2e_ms": 1321.0, "chunks": 101, "input_tokens": 25,
     "output_tokens": 100, "status": 200, "stream": true,
     "itl_p50_ms": 12.0, "itl_max_ms": 40.2, "itl_hist": {"124": 30, "125": 41, "126": 28, "185": 1}}

ITL is summarised per request as p50, max and ``itl_hist``, a sparse log-scale histogram of the request's
chunk gaps in milliseconds: bin index (a string; may be negative) → count, with only non-empty bins present
(its counts sum to ``chunks - 1``). The bin scheme is a wire contract with the control plane, which merges
the histograms of many requests into percentiles; see ``itl_bin``. ``itl_p50_ms``/``itl_max_ms``/``itl_hist``
are null for non-streaming requests and when there was no gap (fewer than two content chunks).

The request path only queues the raw gaps (seconds) with the record; ``metric_record`` turns them into the
ITL fields in the metric spool's writer thread, so sorting and logarithms cost the request nothing. The raw
gaps are not shipped. The whole distribution over all requests is also in the Prometheus histogram.
"""

from __future__ import annotations

import collections
import math
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_PER_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
_E2E = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# The ITL histogram's bins (a wire contract with the control plane: see itl_bin).
ITL_HIST_ALPHA = 0.01
ITL_HIST_GAMMA = (1 + ITL_HIST_ALPHA) / (1 - ITL_HIST_ALPHA)
ITL_HIST_MIN_MS = 0.001
_LOG_GAMMA = math.log(ITL_HIST_GAMMA)


class AdapterMetrics:
    """The adapter's Prometheus collectors, in their own registry (several adapters may share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ttft = Histogram("aicp_adapter_ttft_seconds", "Time to first content chunk", buckets=_LATENCY, registry=r)
        self.tpot = Histogram("aicp_adapter_tpot_seconds", "Time per output token after the first",
                              buckets=_PER_TOKEN, registry=r)  # fmt: skip
        self.itl = BatchHistogram("aicp_adapter_itl_seconds", "Gap between streamed chunks", _PER_TOKEN, r)
        self.e2e = Histogram("aicp_adapter_e2e_seconds", "Request arrival to last byte", buckets=_E2E, registry=r)
        self.requests = Counter("aicp_adapter_requests", "Requests by HTTP status", ["status", "stream"], registry=r)
        self.input_tokens = Counter("aicp_adapter_input_tokens", "Prompt tokens (from usage)", registry=r)
        self.output_tokens = Counter("aicp_adapter_output_tokens", "Generated tokens (from usage)", registry=r)
        self.rejected = Counter("aicp_adapter_rejected", "Requests refused before the engine", ["reason"], registry=r)
        self.spool_dropped = Counter("aicp_adapter_spool_dropped", "Records dropped on a full spool queue",
                                     ["spool"], registry=r)  # fmt: skip
        self.ingest_rejected = Counter("aicp_adapter_ingest_rejected", "Records ingest refused as malformed (422)",
                                       ["spool"], registry=r)  # fmt: skip
        # Reflow capture (capture.py): what it dropped (memory, backlog), waits on disk, and its worker's totals.
        self.reflow_dropped = Counter("aicp_adapter_reflow_dropped", "Captured exchanges dropped: capture behind",
                                      ["reason"], registry=r)  # fmt: skip
        self.reflow_backlog = Gauge("aicp_adapter_reflow_backlog_bytes", "Captures on disk not built into records yet",
                                    registry=r)  # fmt: skip
        self.reflow_built = Counter("aicp_adapter_reflow_built", "Reflow records built (redacted)", registry=r)
        self.reflow_failed = Counter("aicp_adapter_reflow_failed", "Captures no record could be built from",
                                     registry=r)  # fmt: skip
        self.reflow_shipped = Counter("aicp_adapter_reflow_shipped", "Reflow records ingest stored", registry=r)
        self._worker_totals: dict[str, int] = {}

    def capture_status(self, status: dict) -> None:
        """The capture worker's running totals (one process life each): add what grew since its last line."""
        if status.get("pid") != self._worker_totals.get("pid"):
            self._worker_totals = {"pid": status.get("pid")}  # a restarted worker counts from zero
        for key, counter in (
            ("built", self.reflow_built),
            ("failed", self.reflow_failed),
            ("shipped", self.reflow_shipped),
            ("rejected", self.ingest_rejected.labels("reflow")),
        ):
            grown = int(status.get(key, 0)) - self._worker_totals.get(key, 0)
            if grown > 0:
                counter.inc(grown)
            self._worker_totals[key] = int(status.get(key, 0))

    def observe(self, status: int, stream: bool, ttft: float | None, e2e: float, gaps: list[float] | None,
                input_tokens: int, output_tokens: int) -> float | None:  # fmt: skip
        """Record one finished request; returns TPOT in seconds (or None)."""
        self.requests.labels(str(status), "true" if stream else "false").inc()
        self.e2e.observe(e2e)
        if input_tokens:
            self.input_tokens.inc(input_tokens)
        if output_tokens:
            self.output_tokens.inc(output_tokens)
        tpot = None
        if ttft is not None:
            self.ttft.observe(ttft)
            if output_tokens > 1:
                tpot = (e2e - ttft) / (output_tokens - 1)
                self.tpot.observe(tpot)
        if gaps:
            self.itl.observe_many(gaps)
        return tpot


class BatchHistogram:
    """A histogram fed a whole request's values at once (ITL: one value per chunk), from the event loop only.

    prometheus_client's Histogram.observe takes a lock and costs a few µs per value, i.e. per streamed chunk;
    bisecting into a plain list costs a tenth of that. Exposed in the standard histogram format.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        registry.register(self)

    def observe_many(self, values: list[float]) -> None:
        counts, bounds = self.counts, self.bounds
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # the first bound >= value: Prometheus' "le"
        self.sum += sum(values)

    def collect(self):
        cumulative, buckets = 0, []
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)


def itl_summary(gaps: list[float] | None) -> tuple[float | None, float | None]:
    """(p50, max) of the chunk gaps, in milliseconds."""
    if not gaps:
        return None, None
    ordered = sorted(gaps)
    return round(ordered[len(ordered) // 2] * 1000, 3), round(ordered[-1] * 1000, 3)


def itl_bin(ms: float) -> int:
    """The ITL histogram bin of a gap of ``ms`` milliseconds (wire contract with the control plane).

    ``ALPHA = 0.01``, ``GAMMA = (1 + ALPHA) / (1 - ALPHA)``; ``ms`` is clamped to at least 0.001, and its bin is
    ``math.ceil(math.log(ms) / math.log(GAMMA))`` (negative below 1 ms). Bin i covers (GAMMA**(i-1), GAMMA**i] ms;
    its representative value, ``itl_bin_value(i)``, is within ALPHA (1 %) of every value in the bin.
    """
    return math.ceil(math.log(max(ms, ITL_HIST_MIN_MS)) / _LOG_GAMMA)


def itl_bin_value(index: int) -> float:
    """The representative value of ITL histogram bin ``index``, in ms: ``2 * GAMMA**index / (GAMMA + 1)``."""
    return 2 * ITL_HIST_GAMMA**index / (ITL_HIST_GAMMA + 1)


def itl_histogram(gaps: list[float] | None) -> dict[str, int] | None:
    """The sparse ITL histogram of one request's gaps (given in *seconds*): {"<bin>": count}, or None if no gaps."""
    if not gaps:
        return None
    tally = collections.Counter(itl_bin(gap * 1000) for gap in gaps)
    return {str(index): tally[index] for index in sorted(tally)}


def metric_record(item: dict) -> dict:
    """The metric spool's transform (runs in its writer thread): replaces the raw ``gaps`` (seconds, or None)
    that ``Adapter._finish`` queued with ``itl_p50_ms``, ``itl_max_ms`` and ``itl_hist``."""
    gaps = item.pop("gaps")
    item["itl_p50_ms"], item["itl_max_ms"] = itl_summary(gaps)
    item["itl_hist"] = itl_histogram(gaps)
    return item


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
