"""Long prompts pass through the adapter intact: UTF-8 as the caller sent it, only the policy's fields changed, and a
body over the limit answered 413 in the OpenAI error shape."""

from __future__ import annotations

import json

import requests

from tests.serving.adapter.conftest import KEY

HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
POLICY = {"model": "engine-model", "temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}
SYSTEM = {"role": "system", "content": "You are the task's assistant."}


def utf8(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def test_a_2_mib_chinese_prompt_reaches_the_engine_as_utf8_with_only_the_policy_fields_changed(start_adapter, engine):
    url = start_adapter()
    content = "请根据以下资料回答问题：" + "长上下文模型的提示词可以超过一兆字节。" * 37_000
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 8,
        "user": "张三",
        "metadata": {"来源": "检索", "nested": [1, 2.5, None, True, {"k": "值"}]},
        "logit_bias": {"50256": -100},
    }
    sent = utf8(body)
    assert len(sent) > 2 << 20
    resp = requests.post(url + "/v1/chat/completions", data=sent, headers=HEADERS, timeout=60)
    assert resp.status_code == 200, resp.text[:300]
    (received,) = engine.bodies
    assert b"\\u" not in received  # no escape that the request did not have
    expected = {**body, **POLICY, "messages": [SYSTEM, *body["messages"]]}
    assert json.loads(received) == expected  # every other field as the caller sent it
    assert utf8(body["messages"][0]) in received and utf8(body["metadata"]) in received  # byte for byte
    assert len(received) / len(sent) < 1.001


def test_escapes_the_caller_used_are_forwarded_as_they_came_and_a_new_value_adds_none(start_adapter, engine):
    url = start_adapter(system_prompt="回答要简短。")
    sent = b'{"model":"chat","messages":[{"role":"user","content":"\\u4e2d\\u6587 \\ud83d\\ude00 broken \\ud800"}]}'
    assert requests.post(url + "/v1/chat/completions", data=sent, headers=HEADERS).status_code == 200
    received = engine.bodies[-1]
    assert b'{"role":"user","content":"\\u4e2d\\u6587 \\ud83d\\ude00 broken \\ud800"}' in received
    assert '"回答要简短。"'.encode() in received  # the task's system prompt: UTF-8, not escaped
    assert received.count(b"\\u") == 5  # the caller's five escapes, and none more
    assert engine.requests[-1]["messages"][-1]["content"] == "中文 😀 broken \ud800"


def test_a_body_over_the_limit_is_a_413_in_the_openai_shape_naming_the_limit(start_adapter, engine):
    url = start_adapter(max_request_bytes=64 << 10)
    body = utf8({"model": "chat", "messages": [{"role": "user", "content": "x" * (65 << 10)}]})
    with_length = requests.post(url + "/v1/chat/completions", data=body, headers=HEADERS)
    chunked = requests.post(url + "/v1/completions", data=iter([body[:1000], body[1000:]]), headers=HEADERS)
    for resp in (with_length, chunked):
        assert resp.status_code == 413
        error = resp.json()["error"]
        assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
        assert "65536 bytes (0.0625 MiB)" in error["message"]
    assert engine.requests == []
    just_fits = utf8({"model": "chat", "messages": [{"role": "user", "content": "x" * (60 << 10)}]})
    assert requests.post(url + "/v1/chat/completions", data=just_fits, headers=HEADERS).status_code == 200
    assert 'aicp_adapter_rejected_total{reason="too_large"} 2.0' in requests.get(url + "/metrics").text
