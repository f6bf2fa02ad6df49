"""The playground relays a chat with a task through its access URL. A real HTTP server on a free port plays
the task's adapter (OpenAI-style server-sent events, chunked, its 401/429/5xx answers); the task's gateway
points at it."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.urls import reverse

from inference_jobs.orchestrator.kubernetes.render import adapter_config
from inference_jobs.orchestrator.spec import spec_of
from serving.adapter.config import parse_config
from serving.adapter.proxy import Adapter
from tenancy.services import tenant_api_key_create
from tests import factories
from tests.serving.adapter.fakes import FakeEngine, ServerThread, free_port

pytestmark = pytest.mark.django_db

GOOD_KEY = "aicp_sk_00112233445566778899aabbccddeeff_s3cret-Part"
PIECES = ["Hel", "lo", ", wor", "ld!"]


class FakeAdapter(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), AdapterHandler)
        self.calls: list[dict] = []
        self.refuse_with: tuple[int, dict, dict] | None = None  # status, body, headers
        self.hold_after_first = False
        self.release = threading.Event()
        self.held_in_vain = False

    @property
    def port(self) -> int:
        return self.server_address[1]


class AdapterHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeAdapter

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append({"path": self.path, "authorization": self.headers["Authorization"], "body": body})
        if self.headers["Authorization"] != f"Bearer {GOOD_KEY}":
            error = {
                "message": "Incorrect or missing API key.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            return self.reply(401, {"error": error})
        if self.server.refuse_with:
            return self.reply(*self.server.refuse_with)
        if not body.get("stream"):
            return self.reply(
                200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(PIECES)}}]}
            )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, piece in enumerate(PIECES):
            self.chunk({"choices": [{"index": 0, "delta": {"content": piece}}]})
            if index == 0 and self.server.hold_after_first:
                self.server.held_in_vain = not self.server.release.wait(5)
        self.chunk({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}})
        self.chunk("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def chunk(self, data) -> None:
        event = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
        self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        self.wfile.flush()

    def reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def adapter():
    server = FakeAdapter()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def task_behind(deployable, port: int, **fields):
    gateway = factories.GatewayFactory(address="127.0.0.1", port_range_start=port, port_range_end=port)
    defaults = {"status": "running", "served_model_name": "helper", "system_prompt": "Be kind.", "temperature": 0.2}
    return factories.TaskFactory(
        tenant=deployable.tenant, model=deployable.model, gateway=gateway, port=port, **{**defaults, **fields}
    )


@pytest.fixture
def task(deployable, adapter):
    return task_behind(deployable, adapter.port)


@pytest.fixture
def client(deployable) -> Client:
    client = Client()
    client.force_login(deployable.member)
    return client


def turn(**overrides) -> dict:
    data = {
        "api_key": GOOD_KEY,
        "system_prompt": "Be kind.",
        "temperature": 0.2,
        "top_p": 0.9,
        "repetition_penalty": 1.1,
        "max_tokens": 64,
        "message": "Hi",
        "history": json.dumps([{"role": "user", "content": "Before"}, {"role": "assistant", "content": "Earlier"}]),
    }
    data.update(overrides)
    return data


def deltas(events: list[bytes]) -> list[str]:
    """The text pieces of the OpenAI chunks among ``events``, in order."""
    found = []
    for event in events:
        data = event.decode().removeprefix("data: ").strip()
        if data != "[DONE]":
            found += [choice["delta"].get("content") or "" for choice in json.loads(data)["choices"]]
    return [piece for piece in found if piece]


def stream(client, task, **overrides):
    return client.post(reverse("console:task-playground-stream", args=[task.pk]), turn(**overrides))


def test_the_page_is_prefilled_from_the_task(client, task):
    page = client.get(reverse("console:task-playground", args=[task.pk])).content.decode()
    for element in ('id="playground-form"', 'id="api-key"', 'id="send"', "console/playground.js"):
        assert element in page
    assert ">\nBe kind.</textarea>" in page
    assert 'name="temperature" value="0.2"' in page
    assert f'data-stream-url="{reverse("console:task-playground-stream", args=[task.pk])}"' in page


def test_the_relay_passes_each_event_on_in_order_as_soon_as_it_arrives(client, task, adapter):
    adapter.hold_after_first = True
    response = stream(client, task)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = iter(response.streaming_content)

    first = next(events)  # the adapter holds back the rest until the first event got through
    adapter.release.set()
    rest = list(events)
    response.close()

    assert not adapter.held_in_vain
    assert deltas([first, *rest]) == PIECES
    assert rest[-1] == b"data: [DONE]\n\n"
    call = adapter.calls[0]
    assert call["path"] == "/v1/chat/completions" and call["authorization"] == f"Bearer {GOOD_KEY}"
    assert call["body"]["model"] == "helper" and call["body"]["stream"] is True
    assert [m["content"] for m in call["body"]["messages"]] == ["Be kind.", "Before", "Earlier", "Hi"]
    assert (call["body"]["temperature"], call["body"]["repetition_penalty"], call["body"]["max_tokens"]) == (
        0.2,
        1.1,
        64,
    )


def test_a_refused_key_becomes_a_readable_error(client, task):
    response = stream(client, task, api_key="aicp_sk_wrong")
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200  # the relay worked; what it relays is the adapter's refusal
    assert body.startswith("event: error\n")
    error = json.loads(body.split("data: ", 1)[1])
    assert error == {
        "message": "The task refused the API key (401): use an API key of the task's tenant, copied whole.",
        "status": 401,
    }


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"Retry-After": "7"}, "Too many requests (429): Tokens-per-minute limit reached. Try again in 7 s."),
        (502, {}, "The task failed to answer (502): Tokens-per-minute limit reached."),
    ],
)
def test_the_adapters_other_refusals_are_told_with_its_reason(client, task, adapter, status, headers, expected):
    adapter.refuse_with = (status, {"error": {"message": "Tokens-per-minute limit reached."}}, headers)
    response = stream(client, task)
    assert response.status_code == 200
    assert json.loads(b"".join(response.streaming_content).decode().split("data: ", 1)[1])["message"] == expected


def test_a_task_nobody_answers_for_says_so_and_what_state_it_is_in(client, deployable):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    task = task_behind(deployable, closed_port, status="stopped", desired_state="stopped")
    response = stream(client, task)
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200
    assert f"Nothing answers at http://127.0.0.1:{closed_port}/v1 (connection refused)" in body
    assert "The task is stopped." in body


def test_a_turn_without_a_key_is_told_what_is_missing(client, task, adapter):
    response = stream(client, task, api_key="")
    assert response.status_code == 400
    assert "API key: This field is required." in b"".join(response.streaming_content).decode()
    assert adapter.calls == []


def test_without_javascript_the_page_comes_back_with_the_whole_answer(client, task, adapter):
    page = client.post(reverse("console:task-playground", args=[task.pk]), turn())
    body = page.content.decode()
    assert page.status_code == 200
    assert '<div class="bubble user">Hi</div>' in body
    assert '<div class="bubble assistant">Hello, world!</div>' in body
    assert adapter.calls[0]["body"]["stream"] is False
    history = json.loads(body.split('id="history"', 1)[0].rsplit('value="', 1)[1].split('"')[0].replace("&quot;", '"'))
    assert history[-2:] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, world!"}]


def test_without_javascript_a_refusal_is_shown_and_the_message_kept(client, task):
    body = client.post(
        reverse("console:task-playground", args=[task.pk]), turn(api_key="aicp_sk_wrong")
    ).content.decode()
    assert "The task refused the API key (401)" in body
    assert ">\nHi</textarea>" in body and "bubble assistant" in body  # the earlier turns stay


def test_the_api_key_is_kept_nowhere(client, task, caplog):
    caplog.set_level(logging.DEBUG)
    response = stream(client, task)
    b"".join(response.streaming_content)
    page = client.post(reverse("console:task-playground", args=[task.pk]), turn()).content.decode()
    refused = stream(client, task, api_key=GOOD_KEY + "x")
    assert GOOD_KEY not in page and GOOD_KEY not in b"".join(refused.streaming_content).decode()
    assert GOOD_KEY not in str(dict(client.session))
    assert GOOD_KEY not in caplog.text


def test_the_relay_speaks_with_the_real_serving_adapter(client, deployable, settings):
    """The adapter the platform deploys (``serving/adapter``, with the config the reconciler renders for the
    task) in front of a fake engine: the answer streams through, and a wrong key is told as such."""
    settings.AICP_INGEST_URL = "http://127.0.0.1:9/api/v1/ingest/"  # nothing listens: shipping just retries later
    engine = FakeEngine(model="helper")  # the adapter sends the engine the served model name
    engine_server = ServerThread(engine.app).start()
    port = free_port()
    task = task_behind(deployable, port)
    key = tenant_api_key_create(actor=deployable.member, tenant=deployable.tenant, name="playground")
    adapter = ServerThread(Adapter(parse_config(adapter_config(spec_of(task))), engine_server.url).app, port=port)
    adapter.start()
    try:
        answered = stream(client, task, api_key=key.plaintext)
        events = list(answered.streaming_content)
        refused = stream(client, task, api_key=key.plaintext[:-1] + "x")
        refusal = b"".join(refused.streaming_content).decode()
    finally:
        adapter.stop()
        engine_server.stop()
    assert answered.status_code == 200
    assert "".join(deltas(events)) == engine.text
    assert refused.status_code == 200 and "The task refused the API key (401)" in refusal
