"""The benchmark client: N streaming requests, at most C in flight, each timed chunk by chunk.

Which events count is ``vllm bench serve``'s rule (see ``metrics.py``): every event with a non-empty
``choices`` list, whatever its content.

Measurement overhead is kept low on purpose, since the client shares the machine with what it measures: such
an event is recognised by a byte search (the value after ``"choices":`` is a ``[`` not closed at once), and
JSON is parsed only for the usage chunk and for errors. A quote inside a JSON string is always escaped, so the
byte pattern ``"choices"`` cannot come from generated text.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp

from serving.bench.metrics import DEFAULT_PERCENTILES, RequestResult, summarize

ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions"}
_OPEN, _CLOSE = ord("["), ord("]")
_SKIP = frozenset(b" :\t")


@dataclass
class BenchConfig:
    url: str  # the OpenAI base URL, ending in /v1
    concurrency: int
    num_requests: int
    model: str | None = None  # None: the first model of GET /models
    api_key: str | None = None
    endpoint: str = "chat"
    max_tokens: int = 128
    prompt_len: int = 32  # words of the synthetic prompt
    prompt_text: str | None = None  # the message content (or prompt) verbatim, instead of the synthetic words
    ignore_eos: bool = False
    warmup: int = 1  # unmeasured requests first (connections, caches)
    timeout_s: float = 300.0  # per request
    slos: dict[str, float] = field(default_factory=dict)
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES


@dataclass
class BenchRun:
    results: list[RequestResult]
    duration: float
    summary: dict[str, float | int]
    model: str


def _value_start(line: bytes, key: bytes, start: int = 0) -> int:
    """Index of the first byte of ``key``'s value (after the colon and spaces), or -1 when ``key`` is absent."""
    i = line.find(key, start)
    if i == -1:
        return -1
    j, n = i + len(key), len(line)
    while j < n and line[j] in _SKIP:
        j += 1
    return j


def has_choices(line: bytes) -> bool:
    """Whether an SSE line's ``choices`` is a non-empty list: what ``vllm bench serve`` times as a token.

    A role-only chat delta and a chunk with ``"content": ""`` or ``"text": ""`` count; the usage chunk's
    ``"choices": []`` and a missing or null ``choices`` do not.
    """
    j = _value_start(line, b'"choices"')
    if j == -1 or j >= len(line) or line[j] != _OPEN:
        return False
    j += 1
    while j < len(line) and line[j] in _SKIP:
        j += 1
    return j < len(line) and line[j] != _CLOSE


def has_object(line: bytes, key: bytes) -> bool:
    """Whether ``key``'s value on the line is an object (``"usage": {...}``, not ``"usage": null``)."""
    j = _value_start(line, key)
    return j != -1 and j < len(line) and line[j] == ord("{")


PROMPT_VARIANTS = 64  # distinct prompts, cycled: identical ones could be served from a prefix cache


def build_payload(config: BenchConfig, model: str, variant: int = 0) -> bytes:
    """The request body, serialised once per prompt variant (never per request), as UTF-8 JSON.

    With ``prompt_text`` the content is that text for every variant; ``ensure_ascii=False`` sends any non-ASCII
    text as its UTF-8 bytes, as OpenAI clients do, not as ``\\uXXXX`` escapes (the synthetic words are ASCII:
    their bodies are the same bytes either way).
    """
    if config.prompt_text is not None:
        prompt = config.prompt_text
    else:
        prompt = " ".join(f"word{(variant * 7 + i) % 100}" for i in range(config.prompt_len))
    body: dict = {
        "model": model,
        "max_tokens": config.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if config.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if config.ignore_eos:
        body["ignore_eos"] = True
    return json.dumps(body, ensure_ascii=False).encode()


async def send_request(session: aiohttp.ClientSession, url: str, payload: bytes) -> RequestResult:
    """One streaming request, timed from just before it is sent (definitions: ``metrics.py``)."""
    result = RequestResult()
    now = time.perf_counter
    sent = now()
    last = sent
    usage_seen = False
    try:
        async with session.post(url, data=payload) as response:
            if response.status != 200:
                result.error = f"HTTP {response.status}: {(await response.text())[:200]}"
                return result
            # Whole network reads, not lines: one await per read instead of two per event (data + blank line),
            # and every event of a read gets the read's arrival time (they did arrive together).
            pending = b""
            async for data in response.content.iter_any():
                t = now()
                if pending:
                    data = pending + data
                end = data.rfind(b"\n")
                if end == -1:  # no complete line yet
                    pending = data
                    continue
                pending = data[end + 1 :]
                for line in data[:end].split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue  # blank separators, SSE comments (keep-alive pings)
                    result.events += 1
                    if has_choices(line):
                        if result.choice_chunks == 0:
                            result.ttft = t - sent
                        else:
                            result.itl.append(t - last)
                        last = t
                        result.choice_chunks += 1
                    if has_object(line, b'"usage"'):
                        usage = json.loads(line[5:])["usage"]
                        usage_seen = True
                        result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        result.output_tokens = int(usage.get("completion_tokens") or 0)
                    elif b'"error"' in line and b"[DONE]" not in line:
                        error = json.loads(line[5:]).get("error")
                        if error:
                            result.error = f"error event: {json.dumps(error)[:200]}"
                            return result
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    if not usage_seen:
        result.error = "stream ended without a usage chunk (stream_options.include_usage ignored?)"
        return result
    if result.choice_chunks == 0:  # vllm bench serve fails such a request too: it has no first token to time
        result.error = "stream ended without a chunk with choices: no first token"
        return result
    result.latency = last - sent
    result.success = True
    return result


def _session(config: BenchConfig) -> aiohttp.ClientSession:
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    connector = aiohttp.TCPConnector(limit=config.concurrency, limit_per_host=config.concurrency)
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    return aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout)


async def first_model(session: aiohttp.ClientSession, base_url: str) -> str:
    async with session.get(f"{base_url}/models") as response:
        response.raise_for_status()
        models = (await response.json())["data"]
    if not models:
        raise RuntimeError(f"{base_url}/models lists no model; pass --model")
    return models[0]["id"]


async def run_benchmark(config: BenchConfig) -> BenchRun:
    """Warm up, then send ``num_requests`` with ``concurrency`` workers and summarise them."""
    if config.concurrency < 1 or config.num_requests < 1:
        raise ValueError("concurrency and num_requests must be at least 1")
    path = ENDPOINTS[config.endpoint]
    base = config.url.rstrip("/")
    async with _session(config) as session:
        model = config.model or await first_model(session, base)
        variants = 1 if config.prompt_text is not None else min(PROMPT_VARIANTS, config.num_requests)
        payloads = [build_payload(config, model, v) for v in range(variants)]  # one given text: one body
        url = base + path
        for _ in range(config.warmup):
            warm = await send_request(session, url, payloads[0])
            if not warm.success:
                raise RuntimeError(f"warm-up request failed: {warm.error}")
        results: list[RequestResult] = [RequestResult()] * config.num_requests
        indexes = iter(range(config.num_requests))  # shared by the workers: each index is taken once

        async def worker() -> None:
            for i in indexes:
                results[i] = await send_request(session, url, payloads[i % len(payloads)])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(config.concurrency, config.num_requests))))
        duration = time.perf_counter() - started
    summary = summarize(results, duration, slos=config.slos, percentiles=config.percentiles)
    return BenchRun(results=results, duration=duration, summary=summary, model=model)
