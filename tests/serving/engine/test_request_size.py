"""The engine's body limit (``--max-request-bytes``): large prompts get through, a body over it is one clear 413."""

from __future__ import annotations

import json

import pytest
import requests

from serving.engine.__main__ import parse_args
from serving.engine.server import DEFAULT_MAX_REQUEST_BYTES

SMALL_LIMIT = 4096


@pytest.fixture(scope="module")
def small_server(demo_model_dir):
    """An engine whose limit is a few KiB (its own engine: the demo model loads in well under a second)."""
    from serving.engine.core import Engine
    from serving.engine.server import BackgroundServer

    srv = BackgroundServer(Engine(demo_model_dir, batching=False), "demo", max_request_bytes=SMALL_LIMIT).start()
    yield srv
    srv.stop()


def _body(content_bytes: int) -> bytes:
    """A chat request whose body is exactly ``content_bytes`` + the envelope's bytes long (ASCII content)."""
    return json.dumps({"model": "demo", "messages": [{"role": "user", "content": "a" * content_bytes}]}).encode()


def _envelope() -> int:
    return len(_body(0))


def _assert_too_large(reply: requests.Response, limit: int = SMALL_LIMIT) -> None:
    """The OpenAI error shape, worded exactly as the adapter words it."""
    assert reply.status_code == 413, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "request_too_large"
    wording = f"The request body is over this endpoint's limit of {limit} bytes ({limit / 2**20:g} MiB)."
    assert error["message"] == wording


def test_default_limit_is_16_mib_and_documented():
    args = parse_args(["--model", "m"])
    assert args.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES == 16 * 2**20
    assert parse_args(["--model", "m", "--max-request-bytes", "1000"]).max_request_bytes == 1000
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--max-request-bytes", "0"])


def test_a_2_mib_prompt_reaches_the_model(server):
    """Over aiohttp's old 1 MiB default: the engine reads it and answers about the model's context, not 413."""
    prose = "The committee reviewed the quarterly figures and agreed to publish them next week. "
    content = (prose * (2 * 2**20 // len(prose) + 1))[: 2 * 2**20]
    body = {"model": "demo", "messages": [{"role": "user", "content": content}], "max_tokens": 4}
    reply = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert reply.status_code == 400, reply.text[:300]
    assert "context" in reply.json()["error"]["message"]


def test_a_body_over_the_limit_is_refused_by_its_content_length(small_server):
    url = f"{small_server.url}/v1/chat/completions"
    reply = requests.post(url, data=_body(SMALL_LIMIT), headers={"Content-Type": "application/json"}, timeout=30)
    _assert_too_large(reply)
    reply = requests.post(f"{small_server.url}/v1/completions", json={"prompt": "b" * SMALL_LIMIT}, timeout=30)
    _assert_too_large(reply)


def test_a_chunked_body_over_the_limit_is_refused_once_read(small_server):
    data = _body(SMALL_LIMIT * 2)

    def chunks():  # a generator: requests sends Transfer-Encoding: chunked, no Content-Length
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    url = f"{small_server.url}/v1/chat/completions"
    reply = requests.post(url, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30)
    assert "Content-Length" not in reply.request.headers and reply.request.headers["Transfer-Encoding"] == "chunked"
    _assert_too_large(reply)


def test_a_body_of_exactly_the_limit_is_accepted(small_server):
    data = _body(SMALL_LIMIT - _envelope())
    assert len(data) == SMALL_LIMIT
    url = f"{small_server.url}/v1/chat/completions"
    reply = requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=60)
    assert reply.status_code != 413, reply.text[:300]
    assert requests.post(url, json={"model": "demo", "messages": [{"role": "user", "content": "Hi"}],
                                    "max_tokens": 2}, timeout=60).status_code == 200  # fmt: skip
