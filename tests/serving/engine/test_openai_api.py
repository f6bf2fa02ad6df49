"""The official openai client against the engine: chat and completions, streaming and not, usage included."""

from __future__ import annotations

import time

import openai
import pytest
import requests

CHAT = [{"role": "user", "content": "What color is the sky?"}]


def test_models_health_and_metrics(client, server):
    assert [m.id for m in client.models.list().data] == ["demo"]
    assert requests.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    client.completions.create(model="demo", prompt="The cat", max_tokens=3, temperature=0)
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    for name in (
        "aicp_engine_requests_total",
        "aicp_engine_generation_tokens_total",
        "aicp_engine_requests_running",
        "aicp_engine_requests_waiting",
        "aicp_engine_batch_size_bucket",
    ):
        assert name in text


def test_chat_non_streaming_has_usage(client):
    resp = client.chat.completions.create(model="demo", messages=CHAT, max_tokens=12, temperature=0)
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert resp.usage.prompt_tokens > 0
    assert 0 < resp.usage.completion_tokens <= 12
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_chat_streaming_ends_with_usage_chunk(client):
    whole = client.chat.completions.create(model="demo", messages=CHAT, max_tokens=12, temperature=0)
    stream = client.chat.completions.create(
        model="demo", messages=CHAT, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == whole.choices[0].message.content
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
        whole.usage.total_tokens,
    )


def test_completions_streaming_and_not(client):
    whole = client.completions.create(model="demo", prompt="The cat", max_tokens=10, temperature=0)
    assert whole.usage.completion_tokens == 10 or whole.choices[0].finish_reason == "stop"
    stream = client.completions.create(
        model="demo",
        prompt="The cat",
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(client.completions.create(model="demo", prompt="The", max_tokens=4, temperature=0, stream=True))
    assert all(c.choices for c in chunks)


def test_errors_are_openai_shaped(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="The cat", max_tokens=3)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="demo", prompt="The cat", max_tokens=3, temperature=5)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="demo", messages=[], max_tokens=3)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="demo", prompt=[1, 2, 10**9], max_tokens=3)
    # the engine survives bad requests
    assert (
        client.completions.create(model="demo", prompt=[5, 6, 7], max_tokens=2, temperature=0).usage.prompt_tokens == 3
    )


def test_prompt_longer_than_the_context_is_refused(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="demo", prompt=list(range(5)) * 200, max_tokens=3)


def _wait_idle(engine) -> None:
    deadline = time.monotonic() + 10
    while engine.metrics.registry.get_sample_value("aicp_engine_requests_running") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.metrics.registry.get_sample_value("aicp_engine_requests_running") == 0


def _generated(engine) -> float:
    return engine.metrics.registry.get_sample_value("aicp_engine_generation_tokens_total")


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_stops_its_generation(server, stream):
    """Hanging up aborts the sequence: the engine goes idle long before max_tokens would have been reached."""
    before = _generated(server.engine)
    body = {"model": "demo", "prompt": "The cat", "max_tokens": 500, "stream": stream, "ignore_eos": True}
    if stream:
        with requests.post(f"{server.url}/v1/completions", json=body, stream=True, timeout=30) as resp:
            next(resp.iter_lines())
    else:
        with pytest.raises(requests.Timeout):
            requests.post(f"{server.url}/v1/completions", json=body, timeout=0.15)
    _wait_idle(server.engine)
    assert _generated(server.engine) - before < 500
