"""Asynchronous batch inference: concurrent requests of different lengths, joining and leaving mid-flight, must
produce exactly what each produces alone (greedy, and seeded sampling too)."""

from __future__ import annotations

import asyncio

import openai

PROMPTS = [
    "The cat",
    "Once upon a time, there was a little girl who loved the sea. Every day she walked to the beach and",
    "We",
    "The farmer grows wheat, corn and potatoes. The baker makes fresh bread every morning. The",
    "Rain",
    "What is the capital of France? The capital of",
    "The children play in the garden after school. We drink water when we are thirsty. The river flows to the",
    "A",
]
# different lengths make requests leave at different steps while others are still running
MAX_TOKENS = [24, 40, 12, 32, 40, 20, 28, 36]


def _requests():
    reqs = [{"prompt": p, "max_tokens": n, "temperature": 0} for p, n in zip(PROMPTS, MAX_TOKENS, strict=True)]
    reqs[1] |= {"temperature": 1.2, "seed": 5}  # a seeded sample must not depend on its batch neighbours
    reqs[6] |= {"temperature": 0.8, "top_p": 0.9, "seed": 11, "extra_body": {"repetition_penalty": 1.3, "top_k": 20}}
    return reqs


async def _stream(client: openai.AsyncOpenAI, delay: float, req: dict) -> tuple[str, int]:
    await asyncio.sleep(delay)
    req = {**req, "extra_body": {"ignore_eos": True, **req.get("extra_body", {})}}
    stream = await client.completions.create(model="demo", stream=True, stream_options={"include_usage": True}, **req)
    text, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].text)
        if chunk.usage:
            usage = chunk.usage.completion_tokens
    return "".join(text), usage


async def _alone_then_together(url: str, stagger: float):
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120)
    reqs = _requests()
    alone = [await _stream(client, 0, r) for r in reqs]
    together = await asyncio.gather(*[_stream(client, i * stagger, r) for i, r in enumerate(reqs)])
    await client.close()
    return alone, together


def _steps_with_batch_above_one(engine) -> float:
    reg = engine.metrics.registry
    return reg.get_sample_value("aicp_engine_batch_size_count") - reg.get_sample_value(
        "aicp_engine_batch_size_bucket", {"le": "1.0"}
    )


def test_concurrent_requests_match_their_solo_outputs(server):
    batched_before = _steps_with_batch_above_one(server.engine)
    alone, together = asyncio.run(_alone_then_together(server.url, stagger=0.015))
    assert [n for _, n in alone] == MAX_TOKENS  # usage counts what was generated
    for i, (solo, joint) in enumerate(zip(alone, together, strict=True)):
        assert joint == solo, f"request {i} differs when batched"
    assert _steps_with_batch_above_one(server.engine) > batched_before  # they really shared decode steps


def test_batching_off_queues_and_gives_the_same_outputs(server_off):
    alone, together = asyncio.run(_alone_then_together(server_off.url, stagger=0.005))
    assert together == alone
    assert _steps_with_batch_above_one(server_off.engine) == 0
