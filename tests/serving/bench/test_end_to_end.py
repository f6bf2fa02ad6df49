"""The bench client against the fake upstream, in-process; and the official openai client against it.

Timings are loose on the slow side (a 2-core CI machine is busy) and tight on the fast side: the fake
upstream never sends early, so a too-small TTFT or TPOT would be a measurement bug.
"""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from serving.bench.__main__ import main
from serving.bench.client import BenchConfig, build_payload, run_benchmark
from serving.bench.fake_upstream import Timing, running_upstream, serve_in_thread

TIMING = Timing(ttft_ms=30, gap_ms=5, tokens=10)


def bench(timing: Timing = TIMING, **config) -> dict:
    async def go():
        async with running_upstream(timing) as url:
            return await run_benchmark(BenchConfig(url=url, **config))

    return asyncio.run(go())


def test_stream_metrics_match_the_upstream_schedule():
    run = bench(concurrency=2, num_requests=6, max_tokens=100, slos={"ttft": 1000, "tpot": 50})
    s = run.summary
    assert s["completed"] == 6 and s["failed"] == 0
    assert [r.output_tokens for r in run.results] == [10] * 6  # from usage, not max_tokens=100
    # vllm bench serve's token events: the role chunk and the 10 tokens' chunks (the last carries finish_reason)
    assert all(r.choice_chunks == 11 and len(r.itl) == 10 for r in run.results)
    assert all(r.events == 13 for r in run.results)  # role + 10 tokens + usage + [DONE]
    assert all(r.itl[0] < 0.002 for r in run.results)  # role chunk -> first token: sent together
    assert 29.5 <= s["median_ttft_ms"] < 60
    assert 4.5 <= s["mean_tpot_ms"] < 8
    assert 4.0 <= s["median_itl_ms"] < 8
    assert 29.5 + 45 <= s["median_e2el_ms"] < 130  # TTFT + 9 gaps
    assert s["total_output_tokens"] == 60
    assert s["output_throughput"] == pytest.approx(60 / s["duration"])
    assert s["request_goodput"] == pytest.approx(6 / s["duration"])
    assert run.model == "bench"  # from GET /v1/models


def test_max_tokens_below_upstream_length_and_completions_endpoint():
    run = bench(concurrency=3, num_requests=3, max_tokens=4, endpoint="completions", prompt_len=7)
    assert [(r.output_tokens, r.prompt_tokens, r.choice_chunks) for r in run.results] == [(4, 7, 4)] * 3  # no role
    assert run.summary["total_input_tokens"] == 21


def test_stream_without_content_completes_with_zero_tokens():
    run = bench(concurrency=1, num_requests=2, max_tokens=0, warmup=0)  # the fake sends role + finish + usage
    assert run.summary["completed"] == 2
    assert all(r.output_tokens == 0 and r.choice_chunks == 2 and 0.0295 <= r.ttft <= r.latency for r in run.results)


def test_stream_without_any_choices_fails_as_in_vllm():
    """A stream of only usage has no first token: ``vllm bench serve`` marks it failed, and so do we."""
    from aiohttp import web

    async def usage_only(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        usage = {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        return resp

    async def go():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", usage_only)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            config = BenchConfig(url=f"http://127.0.0.1:{port}/v1", model="m", concurrency=1, num_requests=1, warmup=0)
            return await run_benchmark(config)
        finally:
            await runner.cleanup()

    run = asyncio.run(go())
    assert run.summary["completed"] == 0 and "no first token" in run.results[0].error


def test_prompts_vary_between_requests():
    payloads = {build_payload(BenchConfig(url="u", concurrency=1, num_requests=1), "m", v) for v in range(64)}
    assert len(payloads) == 64


def test_concurrency_bounds_requests_in_flight():
    # 8 requests of ~75 ms at concurrency 2 take at least 4 waves; at concurrency 8, about one.
    slow = bench(concurrency=2, num_requests=8, warmup=0, max_tokens=10)
    fast = bench(concurrency=8, num_requests=8, warmup=0, max_tokens=10)
    assert slow.duration >= 4 * 0.075
    assert fast.duration < slow.duration


def test_http_errors_are_counted_not_measured():
    async def go():
        async with running_upstream(TIMING) as url:
            return await run_benchmark(
                BenchConfig(url=url + "/nowhere", model="m", concurrency=2, num_requests=3, warmup=0)
            )

    run = asyncio.run(go())
    assert run.summary["completed"] == 0 and run.summary["failed"] == 3
    assert run.results[0].error.startswith("HTTP 404")


def test_cli_prints_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "out.json"
    with serve_in_thread(TIMING) as url:
        code = main(["--url", url, "--concurrency", "2", "--num-requests", "4", "--goodput", "ttft:1000"])
        assert code == 0
        assert "Mean TTFT (ms):" in capsys.readouterr().out
        assert main(["--url", url, "--num-requests", "2", "--max-tokens", "3", "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["completed"] == 2 and document["total_output_tokens"] == 6
    assert document["slos_ms"] == {} and "p99_itl_ms" in document


def test_cli_fails_when_nothing_completes(capsys):
    assert main(["--url", "http://127.0.0.1:9/v1", "--model", "m", "--num-requests", "1", "--timeout", "2"]) == 1
    assert "benchmark failed" in capsys.readouterr().err


def test_official_openai_client_streaming_and_not():
    with serve_in_thread(TIMING) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=10)
        assert [m.id for m in client.models.list()] == ["bench"]
        messages = [{"role": "user", "content": "one two three"}]

        chunks = list(
            client.chat.completions.create(
                model="m", messages=messages, max_tokens=5, stream=True, stream_options={"include_usage": True}
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == " tok" * 5
        assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].usage.prompt_tokens == 3
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"

        full = client.chat.completions.create(model="m", messages=messages, max_tokens=100)
        assert full.choices[0].message.content == " tok" * 10 and full.usage.completion_tokens == 10
        assert full.choices[0].finish_reason == "stop"

        stream = client.completions.create(model="m", prompt="a b", max_tokens=3, stream=True)
        assert "".join(c.choices[0].text for c in stream if c.choices) == " tok" * 3
        plain = client.completions.create(model="m", prompt="a b", max_tokens=2)
        assert plain.choices[0].text == " tok" * 2 and plain.usage.prompt_tokens == 2


def test_bench_serving_helpers(tmp_path):
    """The pieces of ``benchmarks/serving.py`` that need no subprocess: CPU accounting and the adapter config."""
    import hashlib
    import os

    from benchmarks.serving import adapter_config, available, cpu_seconds

    busy = sum(i * i for i in range(200_000))  # some CPU, so the counter has moved
    assert busy > 0 and cpu_seconds(os.getpid()) > 0
    adapter_config(tmp_path / "a.json", "aicp_sk_1_secret")
    config = json.loads((tmp_path / "a.json").read_text())
    assert config["api_keys"] == [{"id": 1, "digest": hashlib.sha256(b"aicp_sk_1_secret").hexdigest()}]
    assert available("serving.bench.fake_upstream") and not available("serving.no_such_module")


def test_reference_pipe_relays_a_stream_unchanged():
    """The yardstick of ``make bench-serving``: the bench client's figures through the byte pipe match direct."""
    import socket

    from benchmarks.tcp_pipe import serve

    async def go():
        async with running_upstream(TIMING) as url:
            upstream_port = int(url.rsplit(":", 1)[1].split("/")[0])
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            pipe = asyncio.get_running_loop().create_task(serve(port, upstream_port))
            await asyncio.sleep(0.05)  # the server is listening once the task has run a step
            try:
                config = BenchConfig(url=f"http://127.0.0.1:{port}/v1", concurrency=3, num_requests=6, max_tokens=100)
                return await run_benchmark(config)
            finally:
                pipe.cancel()

    run = asyncio.run(go())
    assert run.summary["completed"] == 6 and run.summary["failed"] == 0
    assert [(r.output_tokens, r.choice_chunks, r.events) for r in run.results] == [(10, 11, 13)] * 6
