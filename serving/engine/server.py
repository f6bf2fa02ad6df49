"""The OpenAI-compatible HTTP front end (aiohttp): /v1/models, /v1/chat/completions, /v1/completions, /health,
/metrics. It only parses requests, renders prompts and relays engine events; the model runs in the engine thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

from aiohttp import web

from serving.engine.core import Engine
from serving.engine.sampling import SamplingParams
from serving.request_size import DEFAULT_MAX_REQUEST_BYTES, TOO_LARGE_CODE, too_large_message

DEFAULT_MAX_TOKENS = 256
_DONE = b"data: [DONE]\n\n"


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_response(message: str, status: int = 400, param: str | None = None, code: str | None = None):
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


def too_large_response(limit: int) -> web.Response:
    """The 413 of a body over ``limit`` bytes, worded as the adapter words it (one message for both)."""
    return error_response(too_large_message(limit), 413, code=TOO_LARGE_CODE)


def build_app(
    engine: Engine, served_model_name: str, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> web.Application:
    """The app; a request body over ``max_request_bytes`` is refused with a 413 (``too_large_response``)."""
    if max_request_bytes < 1:
        raise ValueError("max_request_bytes must be at least 1")
    # aiohttp refuses a body over client_max_size when it is read (HTTPRequestEntityTooLarge, caught in _handle);
    # a Content-Length over it is refused before a byte of the body is read.
    app = web.Application(client_max_size=max_request_bytes)
    api = OpenAIServer(engine, served_model_name, max_request_bytes)
    app.router.add_get("/health", api.health)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/v1/models", api.models)
    app.router.add_post("/v1/chat/completions", api.chat)
    app.router.add_post("/v1/completions", api.completions)
    return app


class OpenAIServer:
    def __init__(self, engine: Engine, served_model_name: str, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
        self.engine = engine
        self.name = served_model_name
        self.max_request_bytes = max_request_bytes
        self.created = int(time.time())
        engine.metrics.model_name = served_model_name  # the model_name label of the vllm:* gauges, as in vLLM

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": self.name, "batching": self.engine.batching})

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.engine.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def models(self, request: web.Request) -> web.Response:
        card = {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "aicp",
            "max_model_len": self.engine.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=False)

    # -- request handling ----------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request, chat: bool) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > self.max_request_bytes:
            return too_large_response(self.max_request_bytes)  # refused before reading the body
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
            prompt_ids = self._chat_prompt(body) if chat else self._completion_prompt(body)
            params = self._params(body, len(prompt_ids))
        except web.HTTPRequestEntityTooLarge:  # no Content-Length (chunked): refused once the limit is passed
            return too_large_response(self.max_request_bytes)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response("the request body is not valid JSON")
        except RequestError as exc:
            return error_response(str(exc), exc.status, exc.param, exc.code)
        self.engine.metrics.prompt_tokens.inc(len(prompt_ids))
        endpoint = "chat" if chat else "completions"
        seq, queue = self.engine.submit(prompt_ids, params)
        reply = _Reply(chat=chat, model=self.name)
        try:
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._stream(request, reply, queue, include_usage, endpoint)
            return await self._collect(reply, queue, endpoint)
        finally:
            self.engine.abort(seq)  # no-op when finished; stops generation when the client went away

    def _check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is not None and model != self.name:
            raise RequestError(f"The model `{model}` does not exist.", 404, "model", "model_not_found")

    def _chat_prompt(self, body: dict) -> list[int]:
        self._check_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("messages must be a non-empty list", param="messages")
        for m in messages:
            if not isinstance(m, dict) or "role" not in m:
                raise RequestError("each message needs a role and content", param="messages")
            if isinstance(m.get("content"), list):  # OpenAI content parts: keep the text ones
                m["content"] = "".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))
            m.setdefault("content", "")
        tok = self.engine.tokenizer
        if not tok.chat_template:
            raise RequestError("this model has no chat template; use /v1/completions")
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tok.encode(text, add_special_tokens=False)

    def _completion_prompt(self, body: dict) -> list[int]:
        self._check_model(body)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
            prompt = prompt[0]
        if isinstance(prompt, str) and prompt:
            return self.engine.tokenizer.encode(prompt)
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            vocab = self.engine.model.config.vocab_size
            if not all(0 <= t < vocab for t in prompt):
                raise RequestError(f"token ids must be in [0, {vocab})", param="prompt")
            return prompt
        raise RequestError("prompt must be a non-empty string or list of token ids (one prompt)", param="prompt")

    def _params(self, body: dict, prompt_len: int) -> SamplingParams:
        if body.get("n", 1) != 1:
            raise RequestError("only n=1 is supported", param="n")
        room = self.engine.max_model_len - prompt_len
        if room < 1:
            raise RequestError(f"the prompt has {prompt_len} tokens; this model's context is {room + prompt_len}")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or min(DEFAULT_MAX_TOKENS, room)
        stop = body.get("stop") or []
        try:
            params = SamplingParams(
                max_tokens=int(max_tokens),
                temperature=float(_default(body.get("temperature"), 1.0)),
                top_p=float(_default(body.get("top_p"), 1.0)),
                top_k=int(_default(body.get("top_k"), 0)),
                repetition_penalty=float(_default(body.get("repetition_penalty"), 1.0)),
                seed=None if body.get("seed") is None else int(body["seed"]),
                stop=[stop] if isinstance(stop, str) else list(stop),
                ignore_eos=bool(body.get("ignore_eos", False)),
            )
            params.validate()
        except (TypeError, ValueError) as exc:
            raise RequestError(str(exc)) from exc
        return params

    async def _collect(self, reply: _Reply, queue: asyncio.Queue, endpoint: str) -> web.Response:
        text = []
        while True:
            event = await queue.get()
            if "error" in event:
                return error_response(event["error"], 500)
            text.append(event["text"])
            if "finish" in event:
                break
        self._count(endpoint, event, reply)
        return web.json_response(reply.full("".join(text), event))

    async def _stream(self, request, reply: _Reply, queue: asyncio.Queue, include_usage: bool, endpoint: str):
        """Relay engine events as SSE, shaped the way vLLM's OpenAI server shapes its streams.

        What vLLM does (``serving_chat.py`` / ``serving_completion.py``, mirrored here): nothing is sent until the
        engine's first output for the request, i.e. its first sampled token after prefill. For chat, that moment
        first yields a role-only chunk (``delta: {"role": "assistant", "content": ""}``), then the token's own
        chunk; completions have no role chunk. After that, one chunk per engine output (one per token), even when
        the token adds no text (``"content": ""``). The output that finishes the request carries
        ``finish_reason`` on its own chunk (an EOS token's chunk has empty content), so there is no extra finish
        chunk. With ``stream_options.include_usage`` a usage chunk with ``choices: []`` follows, then
        ``data: [DONE]``. An error before the first token is the stream's first event, with no role chunk.

        Why it matters: ``vllm bench serve`` starts TTFT at the first event with a non-empty ``choices``. A role
        chunk sent on arrival, before prefill, made that clock stop at once. Here the role chunk and the first
        token's chunk go out in one write, so every client sees them together. (vLLM also merges several
        pending outputs into one chunk when its HTTP side falls behind; this relay sends each token separately.)
        """
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        first = True
        while True:
            event = await queue.get()
            if "error" in event:
                frames = _sse({"error": {"message": event["error"], "type": "server_error"}}) + _DONE
                break
            frames = _sse(reply.chunk({"role": "assistant", "content": ""})) if first and reply.chat else b""
            first = False
            frames += _sse(reply.chunk(event["text"], event.get("finish")))
            if "finish" in event:
                self._count(endpoint, event, reply)
                if include_usage:
                    frames += _sse(reply.usage_chunk(event))
                frames += _DONE
                break
            await resp.write(frames)
        await resp.write(frames)
        await resp.write_eof()
        return resp

    def _count(self, endpoint: str, event: dict, reply: _Reply) -> None:
        m = self.engine.metrics
        m.requests.labels(endpoint=endpoint, finish_reason=event["finish"]).inc()
        m.e2e.observe(time.monotonic() - reply.start)


def _default(value, default):
    return default if value is None else value


def _sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


class _Reply:
    """Builds OpenAI response objects for one request (chat or text completion, whole or streamed)."""

    def __init__(self, chat: bool, model: str):
        self.chat, self.model = chat, model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.start = time.monotonic()

    @staticmethod
    def usage(event: dict) -> dict:
        p, c = event["prompt_tokens"], event["completion_tokens"]
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _envelope(self, choices: list, streaming: bool) -> dict:
        obj = "text_completion"
        if self.chat:
            obj = "chat.completion.chunk" if streaming else "chat.completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": choices}

    def full(self, text: str, event: dict) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None}
        choice["finish_reason"] = event["finish"]
        return {**self._envelope([choice], False), "usage": self.usage(event)}

    def chunk(self, delta, finish: str | None = None) -> dict:
        """A streamed chunk; for chat a text ``delta`` becomes ``{"content": delta}``, "" included (as vLLM)."""
        if self.chat:
            delta = delta if isinstance(delta, dict) else {"content": delta}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta, "logprobs": None, "finish_reason": finish}
        return self._envelope([choice], True)

    def usage_chunk(self, event: dict) -> dict:
        return {**self._envelope([], True), "usage": self.usage(event)}


class BackgroundServer:
    """Runs the app on its own event loop in a daemon thread (tests, the benchmark, embedded use)."""

    def __init__(
        self,
        engine: Engine,
        served_model_name: str = "demo",
        host: str = "127.0.0.1",
        port: int = 0,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ):
        self.engine, self.name, self.host, self.port = engine, served_model_name, host, port
        self.max_request_bytes = max_request_bytes
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-http", daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("engine HTTP server did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(
            build_app(self.engine, self.name, self.max_request_bytes), handler_cancellation=True
        )
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self.engine.shutdown()
