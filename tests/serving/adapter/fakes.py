"""Test doubles for the adapter: an OpenAI-like engine (and what vLLM serves on /metrics), an ingest endpoint, and a
thread to serve them in."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Serves an aiohttp app from a private event loop in a daemon thread (tests stay synchronous)."""

    def __init__(self, app_factory: Callable[[], web.Application], port: int | None = None):
        self.app_factory = app_factory
        self.port = port or free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        ready = threading.Event()

        def serve():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self._runner = web.AppRunner(self.app_factory(), access_log=None)
            self.loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            self.loop.run_until_complete(site.start())
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._runner.cleanup())
            self.loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10), "server did not start"
        return self

    def stop(self) -> None:
        if self._thread and self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self._thread = None


class FakeEngine:
    """An OpenAI-compatible engine that records what it received and streams a fixed reply token by token."""

    def __init__(self, model: str = "engine-model"):
        self.model = model
        self.requests: list[dict] = []
        self.bodies: list[bytes] = []  # the request bodies as they arrived, byte for byte
        self.tokens = ["Hello", " from", " the", " fake", " engine", "."]
        self.first_delay = 0.0  # pause after the first content chunk
        self.delay = 0.0  # pause between the other chunks
        self.send_usage = True
        self.split_events = False  # write each SSE event in two halves, as a slow network might deliver it
        self.die_after: int | None = None  # drop the connection after this many content chunks
        self.aborted = 0  # streams whose caller went away before the end
        self.metrics_text: str | None = None  # what GET /metrics answers (Prometheus text); None: 404, as before

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)  # long-context prompts, as a real engine takes them
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        if self.metrics_text is None:
            raise web.HTTPNotFound()
        return web.Response(text=self.metrics_text, content_type="text/plain")

    def usage(self, body: dict) -> dict:
        prompt = body.get("messages") or body.get("prompt") or ""
        words = len(json.dumps(prompt).split())
        return {"prompt_tokens": words, "completion_tokens": len(self.tokens), "total_tokens": words + len(self.tokens)}

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, chat=False)

    async def handle(self, request: web.Request, chat: bool) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append(body)
        self.bodies.append(raw)
        if body.get("model") != self.model:
            return web.json_response({"error": {"message": "no such model", "type": "x", "code": 404}}, status=404)
        kind = "chat.completion" if chat else "text_completion"
        head = {"id": "cmpl-1", "object": kind, "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            choice = {"index": 0, "finish_reason": "stop"}
            choice.update({"message": {"role": "assistant", "content": self.text}} if chat else {"text": self.text})
            return web.json_response({**head, "choices": [choice], "usage": self.usage(body)})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if chat:
            head["object"] = "chat.completion.chunk"

        def event(choice_or_none, **extra) -> bytes:
            choices = [] if choice_or_none is None else [{"index": 0, "finish_reason": None, **choice_or_none}]
            return (
                b"data: " + json.dumps({**head, "choices": choices, **extra}, separators=(",", ":")).encode() + b"\n\n"
            )

        async def send(data: bytes) -> None:
            if self.split_events:
                await resp.write(data[: len(data) // 2])
                await asyncio.sleep(0.01)
                data = data[len(data) // 2 :]
            await resp.write(data)

        try:
            if chat:
                await send(event({"delta": {"role": "assistant", "content": ""}}))
            for i, token in enumerate(self.tokens):
                if i == self.die_after:
                    request.transport.abort()
                    return resp
                await send(event({"delta": {"content": token}} if chat else {"text": token}))
                delay = self.first_delay if i == 0 else self.delay
                if delay:
                    await asyncio.sleep(delay)
        except ConnectionResetError:
            self.aborted += 1
            raise
        stop = {"delta": {}, "finish_reason": "stop"} if chat else {"text": "", "finish_reason": "stop"}
        await send(event(stop))
        if self.send_usage and (body.get("stream_options") or {}).get("include_usage"):
            await send(event(None, usage=self.usage(body)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


class FakeIngest:
    """The control plane's ingest endpoints: keeps every record it is sent (duplicates included).

    ``reject(kind, record)`` may return a record's validation errors (a dict): such records are not kept and the
    batch is answered as the control plane does, 422 ``ingest_records_rejected`` listing them.
    """

    def __init__(self, token: str):
        self.token = token
        self.received: dict[str, list[dict]] = {"reflow": [], "metrics": [], "engine-load": []}
        # the record ids of every POST (engine-load snapshots have none)
        self.posts: dict[str, list[list[str]]] = {"reflow": [], "metrics": [], "engine-load": []}
        self.reject: Callable[[str, dict], dict | None] | None = None
        self.lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 << 20)  # the control plane's AICP_INGEST_MAX_BODY_BYTES
        app.router.add_post("/api/v1/ingest/{kind}/", self.handle)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, chat=False)

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"detail": "bad token"}, status=401)
        body = await request.json()
        kind, records = request.match_info["kind"], body["records"]
        rejected = []
        for index, record in enumerate(records):
            errors = self.reject(kind, record) if self.reject else None
            if errors:
                rejected.append({"index": index, "id": record.get("id"), "errors": errors})
        refused = {r["index"] for r in rejected}
        with self.lock:
            self.posts[kind].append([r.get("id") for r in records])
            self.received[kind].extend(r for i, r in enumerate(records) if i not in refused)
        if rejected:
            answer = {"code": "ingest_records_rejected", "accepted": len(records) - len(rejected), "rejected": rejected}
            return web.json_response(answer, status=422)
        return web.json_response({"accepted": len(records)})

    def ids(self, kind: str) -> set[str]:
        with self.lock:
            return {r["id"] for r in self.received[kind]}


# What vLLM 0.32 serves on /metrics for a model served as "chat" by two data-parallel engine cores (abridged:
# the real page has some hundred more histogram lines). Labels as vLLM sets them (model_name, engine), in the order
# prometheus_client writes them.
VLLM_METRICS = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 18423.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="chat"} 3.0
vllm:num_requests_running{engine="1",model_name="chat"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="chat"} 1.0
vllm:num_requests_waiting{engine="1",model_name="chat"} 4.0
# HELP vllm:num_requests_waiting_by_reason Number of waiting requests by reason. Sum of all reasons equals \
vllm:num_requests_waiting.
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="chat",reason="capacity"} 1.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="chat",reason="deferred"} 0.0
vllm:num_requests_waiting_by_reason{engine="1",model_name="chat",reason="capacity"} 4.0
vllm:num_requests_waiting_by_reason{engine="1",model_name="chat",reason="deferred"} 0.0
# HELP vllm:engine_sleep_state Engine sleep state; awake = 0 means engine is sleeping.
# TYPE vllm:engine_sleep_state gauge
vllm:engine_sleep_state{engine="0",model_name="chat",sleep_state="awake"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="chat"} 0.13
vllm:kv_cache_usage_perc{engine="1",model_name="chat"} 0.4212
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="chat"} 52311.0
vllm:prompt_tokens_total{engine="1",model_name="chat"} 49870.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="chat"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="chat"} 410.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="chat"} 431.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="chat"} 431.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="chat"} 97.53
"""


def vllm_metrics(running=(3, 2), waiting=(1, 4), usage=(0.13, 0.4212)) -> str:
    """``VLLM_METRICS`` with other values of the three gauges, per engine core (0, 1)."""
    text = VLLM_METRICS
    for name, values, old in (
        ("num_requests_running", running, ("3.0", "2.0")),
        ("num_requests_waiting", waiting, ("1.0", "4.0")),
        ("kv_cache_usage_perc", usage, ("0.13", "0.4212")),
    ):
        for engine, (value, was) in enumerate(zip(values, old, strict=True)):
            line = f'vllm:{name}{{engine="{engine}",model_name="chat"}} '
            assert line + was in text
            text = text.replace(line + was, line + str(float(value)))
    return text
