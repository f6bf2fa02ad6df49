"""vLLM's scheduler gauges on the engine's /metrics: the exact names and labels another scraper reads from both
engines, busy and idle."""

from __future__ import annotations

import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.engine.sse import next_event

NAMES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
LABELS = {"model_name": "demo", "engine": "0"}


def scrape(url: str) -> dict[str, float]:
    """The three gauges from /metrics over HTTP, as a Prometheus scraper parses them."""
    found = {}
    for family in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name in NAMES:
                assert sample.labels == LABELS, sample
                found[sample.name] = sample.value
    assert set(found) == set(NAMES)
    return found


def wait_idle(url: str) -> dict[str, float]:
    deadline = time.monotonic() + 20
    while any((gauges := scrape(url)).values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return gauges


def test_gauges_show_requests_in_flight_and_are_zero_when_idle(server_off):
    assert wait_idle(server_off.url) == dict.fromkeys(NAMES, 0.0)
    long = {"model": "demo", "prompt": "The cat sat on the mat", "max_tokens": 400, "ignore_eos": True}
    with requests.post(f"{server_off.url}/v1/completions", json={**long, "stream": True}, stream=True, timeout=60) as a:
        a_lines = a.iter_lines()  # kept: a dropped line iterator closes the connection, which aborts the request
        next_event(a_lines)  # running: its first token is out
        # batching off: one slot, so the second request waits (its headers come back once it is queued)
        with requests.post(f"{server_off.url}/v1/completions", json={**long, "stream": True}, stream=True, timeout=60):
            busy = scrape(server_off.url)
    assert busy["vllm:num_requests_running"] == 1
    assert busy["vllm:num_requests_waiting"] == 1
    prompt_tokens = len(server_off.engine.tokenizer.encode(long["prompt"]))
    capacity = server_off.engine.max_model_len  # one slot of max_model_len positions
    assert prompt_tokens <= busy["vllm:kv_cache_usage_perc"] * capacity <= prompt_tokens + long["max_tokens"]
    # both clients hung up: their requests are dropped, and the gauges go back to zero
    assert wait_idle(server_off.url) == dict.fromkeys(NAMES, 0.0)


def test_gauges_count_a_running_batch(server):
    """With batching on, concurrent requests run together: running counts them all, none waits."""
    body = {"model": "demo", "prompt": "The cat", "max_tokens": 400, "ignore_eos": True, "stream": True}
    url = f"{server.url}/v1/completions"
    with (
        requests.post(url, json=body, stream=True, timeout=60) as a,
        requests.post(url, json=body, stream=True, timeout=60) as b,
    ):
        a_lines, b_lines = a.iter_lines(), b.iter_lines()  # kept: dropping one would hang up (and abort)
        next_event(a_lines)
        next_event(b_lines)
        busy = scrape(server.url)
    assert busy["vllm:num_requests_running"] == 2 and busy["vllm:num_requests_waiting"] == 0
    assert 0 < busy["vllm:kv_cache_usage_perc"] < 1
    assert wait_idle(server.url) == dict.fromkeys(NAMES, 0.0)
