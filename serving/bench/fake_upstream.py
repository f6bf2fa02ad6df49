"""A fake OpenAI-compatible upstream that streams at a fixed rate: the yardstick the benchmarks measure
the adapter against.

``python -m serving.bench.fake_upstream --port 9000 --ttft-ms 20 --gap-ms 5 --tokens 64``

Each completion streams ``min(--tokens, max_tokens)`` content chunks (one token each): the first ``--ttft-ms``
after the request arrived, then one every ``--gap-ms``, on an absolute schedule so that delays do not add
up; then a usage chunk (when ``stream_options.include_usage``) and ``[DONE]``. The stream is shaped like
vLLM's (see ``serving/engine/server.py``): a chat stream's role-only chunk goes out with the first token, and
the last token's chunk carries ``finish_reason`` (with no token at all, one empty chunk carries it). Without
``stream`` it answers one JSON document after the same total time.

It must never be the bottleneck, even at concurrency 64 on two cores: the per-chunk bytes are built once per
model name, access logging is off, and a chunk costs one timer and one write. A completion's body is parsed as
JSON, as a real engine would, so a body a relay mangles fails loudly (400); bodies up to ``--max-request-bytes``
(256 MiB) are taken, and their bytes counted.

Routes: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models`` and the same without ``/v1`` (so an
upstream URL given with or without ``/v1`` both work), plus ``/health``, and:

* ``GET /stats``: ``{"requests": n, "body_bytes": total, "last_body_bytes": n}`` over the completion requests
  received (every one, even those refused as malformed); ``POST /stats/reset`` zeroes them.
* A fake ingest, so that an adapter with reflow capture on can ship to it (its ``ingest.url`` is
  ``http://<host>:<port>/ingest/``): ``POST /ingest/reflow/``, ``/ingest/metrics/`` and ``/ingest/engine-load/``
  take ``{"task_id": .., "records": [..]}`` with any ``Authorization: Bearer <token>`` and answer 200 (401
  without one). The bodies are kept as they came and parsed only when ``GET /ingest/stats`` asks (or when more
  than 256 MiB wait), so that the benchmark's check of what arrived costs nothing while it measures.
  ``GET /ingest/stats`` → ``{"reflow_records": distinct ids, "reflow_deliveries": records received in all,
  "reflow_unredacted": ids of which a delivery still holds a ``--pii-marker`` string, "metrics_records": n,
  "engine_load_records": n, "reflow_bytes": body bytes to /ingest/reflow/, "malformed_batches": bodies that
  were not such an object or held a record without a string ``id``}``; ``POST /ingest/stats/reset`` forgets it
  all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import lru_cache

from aiohttp import web

TOKEN_TEXT = " tok"
CREATED = 1_700_000_000
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Timing:
    ttft_ms: float = 20.0
    gap_ms: float = 5.0
    tokens: int = 64


DEFAULT_MAX_REQUEST_BYTES = 256 << 20
INGEST_PARSE_AT_BYTES = 256 << 20  # unparsed ingest bodies kept before they are parsed anyway


@dataclass
class BodyStats:
    """The completion requests received and their body bytes (``GET /stats``)."""

    requests: int = 0
    body_bytes: int = 0
    last_body_bytes: int = 0

    def count(self, size: int) -> None:
        self.requests += 1
        self.body_bytes += size
        self.last_body_bytes = size

    def as_dict(self) -> dict:
        return {"requests": self.requests, "body_bytes": self.body_bytes, "last_body_bytes": self.last_body_bytes}


class IngestSink:
    """What the fake ingest received: per reflow record id, its deliveries and whether it still holds a marker.

    ``take`` only keeps the body (a list append on the request path); ``stats`` parses what waits first.
    """

    KINDS = ("reflow", "metrics", "engine-load")

    def __init__(self, markers: tuple[str, ...] = ()):
        self.markers = tuple(m for m in markers if m)
        self.reset()

    def reset(self) -> None:
        self._pending: list[tuple[str, bytes]] = []
        self._pending_bytes = 0
        self.reflow: dict[str, list] = {}  # id -> [deliveries, unredacted]
        self.reflow_deliveries = 0
        self.reflow_bytes = 0
        self.records = dict.fromkeys(self.KINDS, 0)
        self.malformed_batches = 0

    def take(self, kind: str, data: bytes) -> None:
        if kind == "reflow":
            self.reflow_bytes += len(data)
        self._pending.append((kind, data))
        self._pending_bytes += len(data)
        if self._pending_bytes > INGEST_PARSE_AT_BYTES:
            self._parse_pending()

    def _parse_pending(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for kind, data in pending:
            try:
                batch = json.loads(data)
                records = batch["records"]
                if not isinstance(records, list) or not isinstance(batch.get("task_id"), int):
                    raise TypeError("records must be a list and task_id an integer")
            except (ValueError, TypeError, KeyError):
                self.malformed_batches += 1
                continue
            self.records[kind] += len(records)
            if kind != "reflow":
                continue
            for record in records:
                record_id = record.get("id") if isinstance(record, dict) else None
                if not isinstance(record_id, str):
                    self.malformed_batches += 1
                    continue
                seen = self.reflow.setdefault(record_id, [0, False])
                seen[0] += 1
                self.reflow_deliveries += 1
                if self.markers and not seen[1]:
                    seen[1] = any(m in text for text in _strings(record) for m in self.markers)

    def stats(self) -> dict:
        self._parse_pending()
        return {
            "reflow_records": len(self.reflow),
            "reflow_deliveries": self.reflow_deliveries,
            "reflow_unredacted": sum(1 for _, unredacted in self.reflow.values() if unredacted),
            "metrics_records": self.records["metrics"],
            "engine_load_records": self.records["engine-load"],
            "reflow_bytes": self.reflow_bytes,
            "malformed_batches": self.malformed_batches,
        }


def _strings(value) -> Iterator[str]:
    """Every string of a JSON value, keys excluded."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


TIMING_KEY = web.AppKey("timing", Timing)
MODEL_KEY = web.AppKey("model", str)
STATS_KEY = web.AppKey("stats", BodyStats)
INGEST_KEY = web.AppKey("ingest", IngestSink)


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@dataclass(frozen=True)
class _Frames:
    role: bytes  # sent just before the first token's chunk (b"" for completions)
    token: bytes  # every token but the last
    last: dict[str, bytes]  # finish reason -> the last token's chunk, which carries it
    empty: dict[str, bytes]  # finish reason -> the one chunk of a stream without tokens


@lru_cache(maxsize=64)
def _frames(kind: str, model: str) -> _Frames:
    """The per-chunk bytes for one model name, built once."""
    finishes = ("length", "stop")
    if kind == "chat":
        head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED, "model": model}

        def chunk(delta: dict, finish: str | None) -> bytes:
            return _sse(head | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

        return _Frames(
            role=chunk({"role": "assistant", "content": ""}, None),
            token=chunk({"content": TOKEN_TEXT}, None),
            last={f: chunk({"content": TOKEN_TEXT}, f) for f in finishes},
            empty={f: chunk({"content": ""}, f) for f in finishes},
        )
    head = {"id": "cmpl-fake", "object": "text_completion", "created": CREATED, "model": model}

    def text_chunk(text: str, finish: str | None) -> bytes:
        return _sse(head | {"choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]})

    return _Frames(
        role=b"",
        token=text_chunk(TOKEN_TEXT, None),
        last={f: text_chunk(TOKEN_TEXT, f) for f in finishes},
        empty={f: text_chunk("", f) for f in finishes},
    )


def _prompt_tokens(body: dict) -> int:
    """A cheap token count: words of the prompt or of the messages' text (enough for usage accounting)."""
    if "messages" in body:
        return sum(len(str(m.get("content") or "").split()) for m in body["messages"] if isinstance(m, dict))
    prompt = body.get("prompt") or ""
    return len(" ".join(prompt).split()) if isinstance(prompt, list) else len(str(prompt).split())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=status)


async def _completion(request: web.Request, kind: str) -> web.StreamResponse:
    arrived = asyncio.get_running_loop().time()
    timing: Timing = request.app[TIMING_KEY]
    raw = await request.read()  # over the app's client_max_size: aiohttp answers 413 itself
    request.app[STATS_KEY].count(len(raw))
    try:
        body = json.loads(raw)
        model = str(body.get("model") or request.app[MODEL_KEY])
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = timing.tokens if max_tokens is None else max_tokens
        count = max(0, min(timing.tokens, int(max_tokens)))
    except (ValueError, TypeError, AttributeError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return _error(400, "the body must be a JSON object with an integer max_tokens")
    finish = "length" if count == int(max_tokens) else "stop"
    usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": count}
    usage["total_tokens"] = usage["prompt_tokens"] + count
    first_at = arrived + timing.ttft_ms / 1000
    gap = timing.gap_ms / 1000
    if not body.get("stream"):
        await asyncio.sleep(max(0.0, first_at + gap * max(count - 1, 0) - asyncio.get_running_loop().time()))
        return web.json_response(_full_response(kind, model, count, finish, usage))

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    frames = _frames(kind, model)
    loop = asyncio.get_running_loop()
    tail = b""
    if count == 0:
        await asyncio.sleep(max(0.0, first_at - loop.time()))
        tail = frames.role + frames.empty[finish]
    for i in range(count):
        delay = first_at + gap * i - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = frames.last[finish] if i == count - 1 else frames.token
        if i == 0:
            frame = frames.role + frame
        if i < count - 1:
            await response.write(frame)
        else:
            tail = frame  # the last token goes out with the usage chunk and [DONE], in one write
    if (body.get("stream_options") or {}).get("include_usage"):
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        tail += _sse({"id": "fake", "object": obj, "created": CREATED, "model": model, "choices": [], "usage": usage})
    await response.write(tail + DONE)
    await response.write_eof()
    return response


def _full_response(kind: str, model: str, count: int, finish: str, usage: dict) -> dict:
    text = TOKEN_TEXT * count
    if kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None}
        head = {"id": "chatcmpl-fake", "object": "chat.completion"}
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
        head = {"id": "cmpl-fake", "object": "text_completion"}
    choice["finish_reason"] = finish
    return head | {"created": CREATED, "model": model, "choices": [choice], "usage": usage}


async def _chat(request: web.Request) -> web.StreamResponse:
    return await _completion(request, "chat")


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _completion(request, "completions")


async def _models(request: web.Request) -> web.Response:
    model = {"id": request.app[MODEL_KEY], "object": "model", "created": CREATED, "owned_by": "fake"}
    return web.json_response({"object": "list", "data": [model]})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].as_dict())


async def _stats_reset(request: web.Request) -> web.Response:
    stats = request.app[STATS_KEY]
    stats.requests = stats.body_bytes = stats.last_body_bytes = 0
    return web.json_response(stats.as_dict())


def _ingest_route(kind: str):
    async def ingest(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(401, "an ingest token is required (Authorization: Bearer <token>)")
        data = await request.read()
        request.app[INGEST_KEY].take(kind, data)
        return web.json_response({"accepted_bytes": len(data)})

    return ingest


async def _ingest_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[INGEST_KEY].stats())


async def _ingest_stats_reset(request: web.Request) -> web.Response:
    sink = request.app[INGEST_KEY]
    sink.reset()
    return web.json_response(sink.stats())


def make_app(
    timing: Timing = Timing(),
    model: str = "bench",
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    pii_markers: tuple[str, ...] = (),
) -> web.Application:
    app = web.Application(client_max_size=max_request_bytes)
    app[TIMING_KEY] = timing
    app[MODEL_KEY] = model
    app[STATS_KEY] = BodyStats()
    app[INGEST_KEY] = IngestSink(pii_markers)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", _chat)
        app.router.add_post(f"{prefix}/completions", _completions)
        app.router.add_get(f"{prefix}/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/stats/reset", _stats_reset)
    for kind in IngestSink.KINDS:
        for path in (f"/ingest/{kind}/", f"/ingest/{kind}"):
            app.router.add_post(path, _ingest_route(kind))
    app.router.add_get("/ingest/stats", _ingest_stats)
    app.router.add_post("/ingest/stats/reset", _ingest_stats_reset)
    return app


@contextlib.asynccontextmanager
async def running_upstream(timing: Timing = Timing(), model: str = "bench", **options) -> AsyncIterator[str]:
    """Serve on a free 127.0.0.1 port in the current event loop; yields the base URL (ending in /v1).

    ``options``: ``make_app``'s keyword options (``max_request_bytes``, ``pii_markers``).
    """
    runner = web.AppRunner(make_app(timing, model, **options), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # aiohttp has no public accessor for an ephemeral port
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serve_in_thread(timing: Timing = Timing(), model: str = "bench", start_timeout: float = 10.0) -> Iterator[str]:
    """The same in a background thread with its own loop, for synchronous callers (the openai client)."""
    loop = asyncio.new_event_loop()
    ready: dict[str, str] = {}
    started = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with running_upstream(timing, model) as url:
            ready["url"] = url
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        if not started.wait(start_timeout):
            raise RuntimeError("fake upstream did not start")
        yield ready["url"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(start_timeout)
        if not thread.is_alive():
            loop.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving.bench.fake_upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--ttft-ms", type=float, default=Timing.ttft_ms)
    parser.add_argument("--gap-ms", type=float, default=Timing.gap_ms)
    parser.add_argument("--tokens", type=int, default=Timing.tokens, help="content chunks per completion at most")
    parser.add_argument("--model", default="bench", help="the name GET /v1/models lists (any name is served)")
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest request body taken, in bytes (default 256 MiB: ingest batches of large reflow records)",
    )
    parser.add_argument(
        "--pii-marker",
        action="append",
        default=[],
        help="a string a redacted reflow record must no longer hold (repeatable; see GET /ingest/stats)",
    )
    args = parser.parse_args(argv)
    if args.ttft_ms < 0 or args.gap_ms < 0 or args.tokens < 1 or args.max_request_bytes < 1:
        parser.error("--ttft-ms and --gap-ms must be >= 0, --tokens and --max-request-bytes >= 1")
    timing = Timing(ttft_ms=args.ttft_ms, gap_ms=args.gap_ms, tokens=args.tokens)
    print(f"fake upstream on http://{args.host}:{args.port}/v1 ({timing}) at {time.strftime('%H:%M:%S')}", flush=True)
    app = make_app(timing, args.model, max_request_bytes=args.max_request_bytes, pii_markers=tuple(args.pii_marker))
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
