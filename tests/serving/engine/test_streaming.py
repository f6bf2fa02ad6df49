"""The engine's SSE streams have vLLM's shape (``serving/engine/server.py``): the chat role chunk only with the
first token, one chunk per token, ``finish_reason`` on the last token's chunk, then usage, then ``[DONE]``."""

from __future__ import annotations

import requests

from tests.serving.engine.sse import DONE, next_event, stream

CHAT = [{"role": "user", "content": "What color is the sky?"}]
TOKENS = 12


def _hold_back(url: str, path: str, body: dict) -> dict:
    """A stop string that is never completed but makes the engine hold one token's whole text back: that token's
    text followed by NUL. At that token the text ends with a prefix of the stop string, so the token adds no text
    yet (it is released with the next one); vLLM still sends the token's chunk, with empty text."""
    pieces = [_text(c) for c in stream(url, path, body)[:-2]]
    piece = next(p for p in pieces[1:] if p)
    return {"stop": [piece + "\x00"]}


def _text(chunk: dict) -> str:
    choice = chunk["choices"][0]
    return choice["text"] if "text" in choice else choice["delta"].get("content", "")


def _split(events: list) -> list:
    """The choices of the chunks before the tail, checking the tail: usage with ``choices: []``, then [DONE]."""
    assert events[-1] == DONE
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == TOKENS
    chunks = events[:-2]
    assert all(len(c["choices"]) == 1 for c in chunks)
    return [c["choices"][0] for c in chunks]


def test_chat_stream_is_shaped_like_vllms(server):
    body = {"messages": CHAT, "max_tokens": TOKENS, "temperature": 0, "ignore_eos": True}
    body |= _hold_back(server.url, "/v1/chat/completions", body)
    role, *tokens = _split(stream(server.url, "/v1/chat/completions", body))
    assert role["delta"] == {"role": "assistant", "content": ""} and role["finish_reason"] is None
    assert len(tokens) == TOKENS  # one chunk per token...
    assert all(set(t["delta"]) == {"content"} for t in tokens)
    assert any(t["delta"]["content"] == "" for t in tokens[:-1])  # ...held-back ones included
    assert [t["finish_reason"] for t in tokens] == [None] * (TOKENS - 1) + ["length"]  # on the last token, no extra
    whole = requests.post(f"{server.url}/v1/chat/completions", json={"model": "demo", **body}, timeout=60).json()
    assert "".join(t["delta"]["content"] for t in tokens) == whole["choices"][0]["message"]["content"]


def test_completions_stream_is_shaped_like_vllms(server):
    body = {"prompt": "The cat", "max_tokens": TOKENS, "temperature": 0, "ignore_eos": True}
    body |= _hold_back(server.url, "/v1/completions", body)
    choices = _split(stream(server.url, "/v1/completions", body))
    assert len(choices) == TOKENS  # no role chunk here; one chunk per token, held-back ones included
    assert any(c["text"] == "" for c in choices[:-1])
    assert [c["finish_reason"] for c in choices] == [None] * (TOKENS - 1) + ["length"]
    whole = requests.post(f"{server.url}/v1/completions", json={"model": "demo", **body}, timeout=60).json()
    assert "".join(c["text"] for c in choices) == whole["choices"][0]["text"]


def test_a_stop_string_finishes_on_the_chunk_of_the_token_that_completed_it(server):
    body = {"model": "demo", "messages": CHAT, "max_tokens": TOKENS, "temperature": 0, "ignore_eos": True}
    text = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=60).json()
    text = text["choices"][0]["message"]["content"]
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    events = stream(server.url, "/v1/chat/completions", {**body, "stop": [stop]})
    assert events[-1] == DONE and events[-2]["choices"] == []
    *before, last = [e["choices"][0] for e in events[:-2]]
    assert last["finish_reason"] == "stop" and set(last["delta"]) == {"content"}  # "content" even when ""
    assert [c["finish_reason"] for c in before] == [None] * len(before)
    assert "".join(c["delta"]["content"] for c in [*before, last]) == text[: text.index(stop)]


def _ttft_count(engine) -> float:
    return engine.metrics.registry.get_sample_value("aicp_engine_time_to_first_token_seconds_count")


def test_the_role_chunk_waits_for_the_first_token(server_off):
    """With batching off a second request waits for the first to finish; its role chunk must wait too (it used to
    go out on arrival, so ``vllm bench serve`` measured a TTFT of about zero for a queued request)."""
    long = {"model": "demo", "prompt": "The cat", "max_tokens": 300, "ignore_eos": True, "stream": True}
    queued = {"model": "demo", "messages": CHAT, "max_tokens": 3, "stream": True}
    with requests.post(f"{server_off.url}/v1/completions", json=long, stream=True, timeout=60) as busy:
        busy_lines = busy.iter_lines()  # kept: a dropped line iterator closes the connection (an abort)
        next_event(busy_lines)  # the long request is running
        before = _ttft_count(server_off.engine)
        with requests.post(f"{server_off.url}/v1/chat/completions", json=queued, stream=True, timeout=60) as resp:
            lines = resp.iter_lines()
            role = next_event(lines)
            assert _ttft_count(server_off.engine) == before + 1  # the engine had sampled its first token
            assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
            assert "content" in next_event(lines)["choices"][0]["delta"]  # the first token's chunk follows
