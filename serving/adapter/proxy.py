"""The adapter's HTTP server: an OpenAI-compatible front in front of one task's engine (vLLM or ours).

Per request: authenticate the tenant key, check the tokens-per-minute budget, apply the task's system prompt
and sampling policy, map the served model name to the engine's, forward, and measure. The streaming path is
the hot one and is kept minimal: upstream bytes are relayed as they arrive, cut only at the last newline of a
read (so an SSE event split across two reads is never half-inspected; engines write whole events, so in
practice nothing is held back), inspected with substring checks, and JSON-parsed only for the usage event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from time import perf_counter

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.adapter.body import RequestBody
from serving.adapter.capture import Capture
from serving.adapter.config import AdapterConfig
from serving.adapter.engine_load import EngineLoadReporter
from serving.adapter.metrics import AdapterMetrics, metric_record, ms
from serving.adapter.ratelimit import TokenBucket
from serving.adapter.reflow import iso
from serving.adapter.spool import Shipper, Spool
from serving.adapter.upstream import UpstreamConnection, UpstreamError, UpstreamPool
from serving.request_size import TOO_LARGE_CODE, too_large_message

log = logging.getLogger(__name__)

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_UPSTREAM_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}  # no compressed SSE
_RAW_UPSTREAM_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity", "Connection": "keep-alive"}
_HIGH_WATER = 64 << 10  # bytes queued to a slow caller before the engine connection stops being read
_CONTENT_KEYS = (b'"content":"', b'"content": "', b'"text":"', b'"text": "')


def config_limit(config: AdapterConfig) -> int:
    """aiohttp's own body limit: above ours, so that ours answers (in the OpenAI error shape) first."""
    return config.max_request_bytes + 1


def error(status: int, message: str, type_: str, code: str, headers: dict | None = None) -> web.Response:
    """An OpenAI-style error body, so SDKs raise their usual exceptions."""
    body = {"error": {"message": message, "type": type_, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def too_large(limit: int) -> web.Response:
    """413 for a body over ``limit`` bytes: the wording our engine uses too."""
    return error(413, too_large_message(limit), "invalid_request_error", TOO_LARGE_CODE)


def has_content(chunk: bytes) -> bool:
    """Whether any SSE event in ``chunk`` carries a non-empty content/text string (no JSON parsing)."""
    for key in _CONTENT_KEYS:
        i = chunk.find(key)
        while i >= 0:
            j = i + len(key)
            if j < len(chunk) and chunk[j] != 34:  # not the closing quote of ""
                return True
            i = chunk.find(key, j)
    return False


def take_usage(chunk: bytes, keep: bool) -> tuple[dict | None, bytes]:
    """Parse the usage out of the event(s) in ``chunk``; drop usage-only events unless the caller asked for them."""
    usage = None
    events = chunk.split(b"\n\n")
    kept = []
    for event in events:
        if b'"usage"' in event and event.startswith(b"data:"):
            try:
                obj = json.loads(event[5:])
            except ValueError:
                kept.append(event)
                continue
            if obj.get("usage"):
                usage = obj["usage"]
                if not keep and not obj.get("choices"):
                    continue
        kept.append(event)
    return usage, chunk if len(kept) == len(events) else b"\n\n".join(kept)


@dataclass(slots=True)
class Exchange:
    """What the adapter learns about one request while serving it."""

    t0: float
    started_at: float
    key_id: int
    chat: bool
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # record id, also the X-Request-Id header
    stream: bool = False
    capture: bool = False  # captured for reflow: ``sent`` and the answer's bytes are kept
    sent: bytes | None = None  # the body sent to the engine, when captured
    status: int = 200
    ttft: float | None = None
    e2e: float = 0.0
    gaps: list[float] = field(default_factory=list)
    chunks: int = 0
    usage: dict | None = None
    raw: list[bytes] | None = None  # streamed bytes, kept only when this exchange is captured for reflow
    unary: bytes | None = None  # the non-streamed answer, for reflow


def ends_stream(sent: bytes) -> bool:
    """The last bytes written to the caller carried the stream's final event: the caller has the whole answer.

    OpenAI clients close the connection as soon as they read ``data: [DONE]``, without waiting for the end of
    the chunked body; a failed ``write_eof`` after that is a served request, not a caller that went away (499).
    """
    return b"data: [DONE]" in sent


class StreamInspector:
    """Looks at an SSE body as it is relayed, read by read, for one exchange (both relay paths use it).

    ``feed(chunk)`` returns the bytes to send on now: the read cut after its last newline (a partial line is
    held back until the next read completes it), with usage-only events dropped unless the caller asked for
    them and the served model name written back. On the way it records TTFT (the first event with content),
    the gaps between later events (ITL), the usage, and, when the exchange is captured for reflow, the bytes.
    ``rest()`` is what was held back when the body ends.
    """

    __slots__ = ("caller_usage", "carry", "clock", "ex", "gaps", "last", "raw", "rewrite", "sent_at")

    def __init__(self, ex: Exchange, caller_usage: bool, rewrite):
        self.ex, self.caller_usage, self.rewrite = ex, caller_usage, rewrite
        self.raw, self.gaps, self.clock = ex.raw, ex.gaps, perf_counter
        self.carry = b""
        self.last = 0.0
        self.sent_at = 0.0  # when the latest bytes were handed on to the caller

    def feed(self, chunk: bytes) -> bytes:
        if self.carry:
            chunk, self.carry = self.carry + chunk, b""
        if chunk[-1] != 10:  # hold back only a trailing partial line
            cut = chunk.rfind(b"\n") + 1
            self.carry = chunk[cut:]
            if not cut:
                return b""
            chunk = chunk[:cut]
        now = self.clock()
        with_usage = b'"usage":{' in chunk or b'"usage": {' in chunk
        if with_usage:
            usage, chunk = take_usage(chunk, self.caller_usage)
            self.ex.usage = usage or self.ex.usage
        if self.last:
            if not with_usage and not chunk.startswith(b"data: [DONE]"):
                self.gaps.append(now - self.last)
                self.last = now
        elif has_content(chunk):
            self.ex.ttft = now - self.ex.t0
            self.last = now
        if self.rewrite:
            for old, new in self.rewrite:
                chunk = chunk.replace(old, new)
        if self.raw is not None:
            self.raw.append(chunk)
        self.sent_at = now
        return chunk

    def rest(self) -> bytes:
        carry, self.carry = self.carry, b""
        return carry

    def finish(self) -> None:
        """The exchange's end-to-end time and content-chunk count, once the body is done (or broken off).

        E2E ends when the last bytes were handed to the caller's connection, not when the response was closed
        after them: a caller may be done reading before the adapter gets round to closing."""
        self.ex.e2e = (self.sent_at or self.clock()) - self.ex.t0
        self.ex.chunks = len(self.gaps) + (1 if self.last else 0)


class Adapter:
    def __init__(self, config: AdapterConfig, upstream: str):
        self.config = config
        upstream = upstream.rstrip("/")
        self.upstream = upstream[:-3] if upstream.endswith("/v1") else upstream
        self.metrics = AdapterMetrics()
        self.bucket = TokenBucket(config.tokens_per_minute)
        self.session: aiohttp.ClientSession | None = None
        self.pool: UpstreamPool | None = None  # streaming requests: the lean HTTP/1.1 client (http:// only)
        self.capture: Capture | None = None  # reflow capture: records are built in a worker process
        self.metrics_spool: Spool | None = None
        self.engine_load: EngineLoadReporter | None = None  # reads the engine's /metrics, reports its load
        self._tasks: list = []
        up, served = config.upstream_model, config.served_model_name
        self._rewrite = None
        if up != served:  # the exact field as engines serialise it, with and without a space
            up, served = json.dumps(up), json.dumps(served)
            self._rewrite = [(f'"model":{up}'.encode(), f'"model":{served}'.encode()),
                             (f'"model": {up}'.encode(), f'"model": {served}'.encode())]  # fmt: skip
        self._system = {"role": "system", "content": config.system_prompt} if config.system_prompt else None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=config_limit(self.config))
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/healthz", self.healthz)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=4096, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
        if self.upstream.startswith("http://"):
            self.pool = UpstreamPool(self.upstream, connect_timeout=10)
        ingest, cfg = self.config.ingest, self.config
        if ingest is None:
            return
        dropped, rejected = self.metrics.spool_dropped, self.metrics.ingest_rejected
        self.metrics_spool = Spool(
            f"{cfg.reflow.spool_dir}/metrics", transform=metric_record, on_drop=dropped.labels("metrics").inc
        )
        if cfg.reflow.enabled:
            self.capture = self._start_capture()  # the capture worker process ships the reflow spool
        shipper = Shipper(self.metrics_spool, f"{ingest.url}metrics/", ingest.token, cfg.task_id, self.session,
                          batch_size=ingest.batch_size, interval_s=ingest.interval_s,
                          max_backoff_s=ingest.max_backoff_s, on_rejected=rejected.labels("metrics").inc)  # fmt: skip
        self._tasks.append(asyncio.get_running_loop().create_task(shipper.run()))
        if ingest.engine_load_interval_s > 0:
            self.engine_load = EngineLoadReporter(
                self.session, f"{self.upstream}/metrics", f"{ingest.url}engine-load/", ingest.token, cfg.task_id,
                interval_s=ingest.engine_load_interval_s,
            )  # fmt: skip
            self._tasks.append(asyncio.get_running_loop().create_task(self.engine_load.run()))

    async def _stop(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        if self.capture:
            await asyncio.to_thread(self.capture.close)
        if self.metrics_spool:
            self.metrics_spool.close()
        if self.session:
            await self.session.close()
        if self.pool:
            self.pool.close()

    def _start_capture(self) -> Capture:
        cfg, ingest, metrics = self.config, self.config.ingest, self.metrics
        settings = {
            "spool_dir": cfg.reflow.spool_dir, "redact": cfg.reflow.redact, "task_id": cfg.task_id,
            "ingest": {"url": ingest.url, "token": ingest.token, "batch_size": ingest.batch_size,
                       "interval_s": ingest.interval_s, "max_backoff_s": ingest.max_backoff_s},
        }  # fmt: skip
        capture = Capture(cfg.reflow.spool_dir, settings, max_pending_bytes=cfg.reflow.max_pending_bytes,
                          max_backlog_bytes=cfg.reflow.max_backlog_bytes,
                          on_drop=lambda reason: metrics.reflow_dropped.labels(reason).inc(),
                          on_status=metrics.capture_status)  # fmt: skip
        metrics.reflow_backlog.set_function(lambda: capture.backlog)
        metrics.ingest_rejected.labels("reflow")  # every series from the start, at 0
        for reason in ("memory", "backlog", "error"):
            metrics.reflow_dropped.labels(reason)
        return capture

    # ---- endpoints -------------------------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> int | None:
        """The key id, or None. A dict lookup by digest is safe: the digest of a 256-bit secret reveals nothing."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return self.config.api_keys.get(hashlib.sha256(auth[7:].strip().encode()).hexdigest())

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def prometheus(self, request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.metrics.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def models(self, request: web.Request) -> web.Response:
        if self.authenticate(request) is None:
            return self._unauthorized()
        model = {"id": self.config.served_model_name, "object": "model", "created": 0, "owned_by": "aicp"}
        return web.json_response({"object": "list", "data": [model]})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, chat=False)

    def _unauthorized(self) -> web.Response:
        resp = error(401, "Incorrect or missing API key.", "invalid_request_error", "invalid_api_key")
        return self._refused("auth", resp)

    def _refused(self, reason: str, resp: web.Response) -> web.Response:
        """Count a request answered before reaching the engine (no metric record is shipped for it)."""
        self.metrics.rejected.labels(reason).inc()
        self.metrics.requests.labels(str(resp.status), "unknown").inc()
        return resp

    # ---- the proxy -------------------------------------------------------------------------------------

    async def _proxy(self, request: web.Request, chat: bool) -> web.StreamResponse:
        t0, started_at = perf_counter(), time.time()
        key_id = self.authenticate(request)
        if key_id is None:
            return self._unauthorized()
        wait = self.bucket.retry_after()
        if wait:
            msg = f"Tokens-per-minute limit of {self.config.tokens_per_minute} reached; retry in {wait}s."
            resp = error(429, msg, "rate_limit_error", "rate_limit_exceeded", {"Retry-After": str(wait)})
            return self._refused("rate_limit", resp)
        raw_body = await self._read_body(request)
        if isinstance(raw_body, web.Response):
            return self._refused("too_large", raw_body)
        try:
            parsed = RequestBody(raw_body)
        except ValueError:
            resp = error(400, "The request body is not valid JSON.", "invalid_request_error", "invalid_json")
            return self._refused("invalid", resp)
        del raw_body
        body = parsed.data
        problem = self._prepare(body, chat)
        if problem:
            return self._refused("invalid", problem)
        ex = Exchange(t0=t0, started_at=started_at, key_id=key_id, chat=chat, stream=body.get("stream") is True)
        caller_usage = True
        if ex.stream:
            options = body.get("stream_options") or {}
            caller_usage = options.get("include_usage") is True
            body["stream_options"] = {**options, "include_usage": True}
        sent = parsed.encode()
        del body, parsed  # from here on the request is ``sent``; a large prompt is not held twice
        reflow = self.config.reflow
        if self.capture and (reflow.sample_rate >= 1 or random.random() < reflow.sample_rate):
            ex.capture, ex.sent = True, sent
            ex.raw = [] if ex.stream else None
        path = "/v1/chat/completions" if chat else "/v1/completions"
        if ex.stream and self.pool is not None:
            return await self._proxy_stream(request, path, sent, ex, caller_usage)
        url = self.upstream + path
        try:
            upstream = await self.session.post(url, data=sent, headers=_UPSTREAM_HEADERS)
        except (aiohttp.ClientError, OSError) as exc:
            ex.status, ex.e2e = 502, perf_counter() - t0
            self._finish(ex)
            return error(502, f"The model engine is unreachable: {exc}", "server_error", "upstream_unavailable")
        try:
            if upstream.status != 200:
                ex.status = upstream.status
                data = await upstream.read()
                headers = {"X-Request-Id": ex.id}
                return web.Response(status=upstream.status, body=data, content_type="application/json", headers=headers)
            if ex.stream:
                return await self._relay_stream(request, upstream, ex, caller_usage)
            return await self._relay_unary(upstream, ex)
        except (aiohttp.ClientError, TimeoutError) as exc:  # reading a non-streamed answer failed
            ex.status = 502
            upstream.close()
            log.warning("upstream failed mid-response: %s", exc)
            return error(502, "The model engine failed mid-response.", "server_error", "upstream_failed")
        finally:
            upstream.release()
            if not ex.e2e:
                ex.e2e = perf_counter() - t0
            self._finish(ex)

    async def _read_body(self, request: web.Request) -> bytearray | web.Response:
        """The request body, or a 413 over ``max_request_bytes`` (refused before reading when its length says so)."""
        limit = self.config.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            return too_large(limit)
        data = bytearray()
        async for chunk in request.content.iter_any():
            data += chunk
            if len(data) > limit:
                return too_large(limit)
        return data

    def _prepare(self, body, chat: bool) -> web.Response | None:
        """Apply the task's model name, system prompt and sampling policy to the request, in place.

        Values are replaced, never changed where they are: what is still the parsed object is sent as the caller's
        bytes (``body.RequestBody``)."""
        if not isinstance(body, dict):
            return error(400, "The request body must be a JSON object.", "invalid_request_error", "invalid_body")
        cfg = self.config
        model = body.get("model")
        if model is not None and model != cfg.served_model_name:
            msg = f"The model '{model}' does not exist; this endpoint serves '{cfg.served_model_name}'."
            return error(404, msg, "invalid_request_error", "model_not_found")
        body["model"] = cfg.upstream_model
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return error(400, "'messages' must be a non-empty list.", "invalid_request_error", "invalid_messages")
            if self._system is not None:
                if cfg.locked:
                    messages = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
                    body["messages"] = [dict(self._system), *messages]
                elif not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
                    body["messages"] = [dict(self._system), *messages]
        for key, value in cfg.sampling.items():
            if cfg.locked or body.get(key) is None:
                body[key] = value
        return None

    async def _relay_unary(self, upstream: aiohttp.ClientResponse, ex: Exchange) -> web.Response:
        data = await upstream.read()
        ex.e2e = perf_counter() - ex.t0
        with contextlib.suppress(ValueError, AttributeError):
            ex.usage = json.loads(data).get("usage")
        if ex.capture:
            ex.unary = data
        if self._rewrite:
            for old, new in self._rewrite:
                data = data.replace(old, new, 1)
        return web.Response(body=data, content_type="application/json", headers={"X-Request-Id": ex.id})

    async def _relay_stream(self, request, upstream, ex: Exchange, caller_usage: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={**_SSE_HEADERS, "X-Request-Id": ex.id})
        await resp.prepare(request)
        inspector = StreamInspector(ex, caller_usage, self._rewrite)
        feed, write = inspector.feed, resp.write
        read = upstream.content.readany
        last = b""
        try:
            while chunk := await read():
                chunk = feed(chunk)
                if chunk:
                    await write(chunk)
                    last = chunk
            rest = inspector.rest()
            if rest:
                await write(rest)
                last = rest
            await resp.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError included: the caller went away
            if not ends_stream(last):
                ex.status = 499
            upstream.close()  # dropping the engine connection aborts the generation
        except (aiohttp.ClientError, TimeoutError) as exc:  # the engine failed mid-stream: end the stream as is
            ex.status = 502
            upstream.close()
            log.warning("upstream failed mid-stream: %s", exc)
        inspector.finish()
        return resp

    async def _proxy_stream(self, request, path: str, sent: bytes, ex: Exchange, caller_usage: bool):
        """A streamed request over the lean upstream client (see upstream.py); same behaviour as the aiohttp path."""
        try:
            conn = await self.pool.post(path, sent, _RAW_UPSTREAM_HEADERS)
        except (UpstreamError, OSError, TimeoutError) as exc:
            ex.status, ex.e2e = 502, perf_counter() - ex.t0
            self._finish(ex)
            return error(502, f"The model engine is unreachable: {exc}", "server_error", "upstream_unavailable")
        try:
            if conn.status != 200:
                ex.status = conn.status
                await conn.done
                headers = {"X-Request-Id": ex.id}
                data = b"".join(conn.body)
                return web.Response(status=conn.status, body=data, content_type="application/json", headers=headers)
            return await self._relay_raw(request, conn, ex, caller_usage)
        except (UpstreamError, OSError, TimeoutError) as exc:  # reading a non-200 answer failed
            ex.status = 502
            log.warning("upstream failed mid-response: %s", exc)
            return error(502, "The model engine failed mid-response.", "server_error", "upstream_failed")
        finally:
            conn.release()
            if not ex.e2e:
                ex.e2e = perf_counter() - ex.t0
            self._finish(ex)

    async def _relay_raw(self, request, conn: UpstreamConnection, ex: Exchange, caller_usage: bool):
        """Relay the SSE body chunk by chunk from inside the upstream protocol's ``data_received``.

        Each decoded read is inspected (as in ``_relay_stream``) and written to the caller's transport already
        framed as an HTTP/1.1 chunk (the response is prepared chunked by aiohttp, whose ``write_eof`` ends it).
        When the caller's transport buffers more than ``_HIGH_WATER`` bytes, the engine connection stops being
        read until it drains. A caller that went away is noticed at the next write: the engine connection is
        dropped (which aborts the generation) and the exchange counts as 499.
        """
        resp = web.StreamResponse(headers={**_SSE_HEADERS, "X-Request-Id": ex.id})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"")  # sends the buffered headers: from here on chunks go straight to the transport
        transport = request.transport
        inspector = StreamInspector(ex, caller_usage, self._rewrite)
        feed = inspector.feed
        state = {"gone": False, "paused": False, "last": b""}
        loop = asyncio.get_running_loop()
        wake: list[asyncio.Future | None] = [None]

        def on_data(chunk: bytes) -> None:
            chunk = feed(chunk)
            if chunk:
                send(chunk)

        def send(chunk: bytes) -> None:
            if transport is None or transport.is_closing():
                state["gone"] = True
                conn.on_data = None
                conn.abort()
                waiter = wake[0]
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                return
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            state["last"] = chunk
            if transport.get_write_buffer_size() > _HIGH_WATER and not state["paused"]:
                state["paused"] = True
                conn.pause_reading()
                waiter = wake[0]
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

        conn.on_data = on_data
        if conn.body:  # bytes that arrived with the response head
            for data in conn.body:
                on_data(data)
            conn.body.clear()
        try:
            while not state["gone"] and not conn.done.done():
                if state["paused"]:
                    await resp._payload_writer.drain()  # the caller can take more (private in aiohttp 3; pinned <4)
                    state["paused"] = False
                    conn.resume_reading()
                    continue
                wake[0] = waiter = loop.create_future()
                try:
                    await asyncio.wait((waiter, conn.done), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    wake[0] = None
            if state["gone"]:
                raise ConnectionResetError("the caller went away")
            conn.done.result()  # raises UpstreamError when the engine failed mid-stream
            rest = inspector.rest()
            if rest:
                send(rest)
                if state["gone"]:
                    raise ConnectionResetError("the caller went away")
            await resp.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError included: the caller went away
            if not ends_stream(state["last"]):
                ex.status = 499
            conn.abort()
        except (UpstreamError, OSError, TimeoutError) as exc:  # the engine failed mid-stream: end the stream as is
            ex.status = 502
            conn.abort()
            log.warning("upstream failed mid-stream: %s", exc)
        except BaseException:
            conn.abort()
            raise
        finally:
            conn.on_data = None
        inspector.finish()
        return resp

    def _finish(self, ex: Exchange) -> None:
        """Account tokens, observe metrics and queue the metric and reflow items (never blocks).

        What is queued belongs to the spool's writer thread from then on: lists the stream inspector appends to
        (gaps, raw) are queued as copies (a pointer copy, cheaper than the sort it replaces), so nothing the
        request path still holds can change under the writer. The ITL fields of the metric record are computed
        there, from the raw gaps (``metrics.metric_record``).
        """
        usage = ex.usage or {}
        input_tokens = usage.get("prompt_tokens") or 0
        output_tokens = usage.get("completion_tokens")
        if output_tokens is None:
            output_tokens = ex.chunks  # no usage from the engine: one token per content chunk, an estimate
        self.bucket.charge(input_tokens + output_tokens)
        gaps = ex.gaps if ex.stream else None
        tpot = self.metrics.observe(ex.status, ex.stream, ex.ttft, ex.e2e, gaps, input_tokens, output_tokens)
        cfg = self.config
        record_id = ex.id
        if self.metrics_spool:
            self.metrics_spool.put({
                "id": record_id, "task_id": cfg.task_id, "tenant_id": cfg.tenant_id, "api_key_id": ex.key_id,
                "started_at": iso(ex.started_at), "ttft_ms": ms(ex.ttft), "tpot_ms": ms(tpot), "e2e_ms": ms(ex.e2e),
                "chunks": ex.chunks, "input_tokens": input_tokens, "output_tokens": output_tokens, "status": ex.status,
                "stream": ex.stream, "gaps": gaps[:] if gaps else None,  # seconds, see metric_record
            })  # fmt: skip
        if ex.capture and ex.status == 200:
            response = ex.raw[:] if ex.stream else [ex.unary or b""]
            self.capture.put({
                "id": record_id, "task_id": cfg.task_id, "tenant_id": cfg.tenant_id, "api_key_id": ex.key_id,
                "endpoint": "chat" if ex.chat else "completions", "chat": ex.chat, "stream": ex.stream,
                "input_tokens": input_tokens, "output_tokens": output_tokens, "ttft_ms": ms(ex.ttft),
                "tpot_ms": ms(tpot), "status": ex.status, "runtime_image_version": cfg.runtime_image_version,
                "started_at": ex.started_at, "finished_at": ex.started_at + ex.e2e,
            }, ex.sent, response)  # fmt: skip
