"""Prometheus metrics of one engine, in their own registry (several engines can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class EngineMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
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

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
