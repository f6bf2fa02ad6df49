"""Prometheus metrics of one engine, in their own registry (several engines can live in one test process).

Besides our own ``aicp_engine_*`` series, the engine exposes three of vLLM's scheduler gauges under vLLM's exact
names, labels and meaning, so that one scraper reads queue depth and KV-cache pressure from either engine:

* ``vllm:num_requests_running``: requests in the running batch, i.e. being prefilled or decoded this step
  (vLLM: "Number of requests in model execution batches");
* ``vllm:num_requests_waiting``: requests accepted but not yet admitted to the batch (all batch slots taken,
  or with ``--batching off`` the one slot busy); vLLM: "Number of requests waiting to be processed";
* ``vllm:kv_cache_usage_perc``: a fraction in [0, 1], despite the name (vLLM: "1 means 100 percent usage").
  vLLM divides the KV blocks in use by its preallocated pool. Our cache is allocated on demand, so the pool is
  the most it can ever hold: ``max_batch_size`` sequences of ``max_model_len`` positions. Used is the positions
  of the running sequences' tokens (prompt and output), not the left padding of the batch tensor.

Labels as vLLM v1 sets them: ``model_name`` (the served model name, set by the front end) and ``engine``
(the engine-core index; always "0" here: one engine per process). The values are plain numbers the worker
thread writes after every step and the collector reads at scrape time, so a scrape never waits for a step.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

VLLM_RUNNING = "vllm:num_requests_running"
VLLM_WAITING = "vllm:num_requests_waiting"
VLLM_KV_USAGE = "vllm:kv_cache_usage_perc"
VLLM_LABELS = ("model_name", "engine")
ENGINE_INDEX = "0"


class EngineMetrics:
    def __init__(self, model_name: str = ""):
        self.registry = CollectorRegistry()
        r = self.registry
        self.model_name = model_name  # the ``model`` callers use; the front end sets it (vLLM's served name)
        self.num_running = 0
        self.num_waiting = 0
        self.kv_cache_usage = 0.0
        self.requests = Counter("aicp_engine_requests", "Finished requests", ["endpoint", "finish_reason"], registry=r)
        self.prompt_tokens = Counter("aicp_engine_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generation_tokens = Counter("aicp_engine_generation_tokens", "Tokens generated", registry=r)
        self.running = Gauge("aicp_engine_requests_running", "Sequences in the running batch", registry=r)
        self.waiting = Gauge("aicp_engine_requests_waiting", "Requests queued for admission", registry=r)
        self.batch_size = Histogram(
            "aicp_engine_batch_size",
            "Sequences per batched decode step",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.ttft = Histogram(
            "aicp_engine_time_to_first_token_seconds",
            "Request arrival to first token",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.e2e = Histogram(
            "aicp_engine_e2e_request_latency_seconds",
            "Request arrival to last token",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        r.register(_SchedulerGauges(self))

    def set_waiting(self, count: int) -> None:
        self.num_waiting = count
        self.waiting.set(count)

    def set_running(self, count: int, kv_cache_usage: float) -> None:
        self.num_running = count
        self.kv_cache_usage = kv_cache_usage
        self.running.set(count)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _SchedulerGauges:
    """vLLM's three scheduler gauges, built from the values the worker last wrote."""

    def __init__(self, metrics: EngineMetrics):
        self.metrics = metrics

    def collect(self):
        m = self.metrics
        labels = [m.model_name, ENGINE_INDEX]
        for name, documentation, value in (
            (VLLM_RUNNING, "Number of requests in model execution batches.", m.num_running),
            (VLLM_WAITING, "Number of requests waiting to be processed.", m.num_waiting),
            (VLLM_KV_USAGE, "KV-cache usage. 1 means 100 percent usage.", m.kv_cache_usage),
        ):
            gauge = GaugeMetricFamily(name, documentation, labels=list(VLLM_LABELS))
            gauge.add_metric(labels, value)
            yield gauge
