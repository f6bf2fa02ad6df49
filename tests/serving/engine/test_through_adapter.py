"""The whole data plane of a task: the official openai client → the adapter → our engine on the demo model.

The adapter's own tests use a fake engine; this one checks that the two real pieces fit: names mapped both
ways, the task's system prompt reaching the chat template, usage from the engine reaching the caller, and
streaming through both hops.
"""

from __future__ import annotations

import openai
import pytest

from serving.adapter.config import parse_config
from serving.adapter.proxy import Adapter
from tests.serving.adapter.conftest import KEY, make_config
from tests.serving.adapter.fakes import ServerThread


@pytest.fixture(scope="module")
def through_adapter(server):
    config = make_config(
        served_model_name="support-bot",
        upstream_model="demo",
        system_prompt="You answer in one short sentence.",
        sampling_policy="locked",
        sampling={"temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0},
    )
    adapter = ServerThread(Adapter(parse_config(config), server.url).app).start()
    yield openai.OpenAI(base_url=f"{adapter.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    adapter.stop()


@pytest.fixture
def direct(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=60)


QUESTION = [{"role": "user", "content": "What is two plus two?"}]
WITH_PROMPT = [{"role": "system", "content": "You answer in one short sentence."}, *QUESTION]


def test_chat_through_the_adapter_is_the_engine_answer_to_the_injected_prompt(through_adapter, direct):
    via = through_adapter.chat.completions.create(model="support-bot", messages=QUESTION, max_tokens=12)
    alone = direct.chat.completions.create(model="demo", messages=WITH_PROMPT, max_tokens=12, temperature=0)
    assert via.model == "support-bot"
    assert via.choices[0].message.content == alone.choices[0].message.content
    assert via.usage.prompt_tokens == alone.usage.prompt_tokens
    assert via.usage.completion_tokens == alone.usage.completion_tokens > 0


def test_streaming_chat_through_the_adapter_ends_with_usage(through_adapter):
    stream = through_adapter.chat.completions.create(
        model="support-bot",
        messages=QUESTION,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert {c.model for c in chunks} == {"support-bot"}
    assert text and usage.completion_tokens > 0 and chunks[-1].choices == []
    full = through_adapter.chat.completions.create(model="support-bot", messages=QUESTION, max_tokens=12)
    assert text == full.choices[0].message.content


def test_completions_through_the_adapter_stream_and_not(through_adapter):
    plain = through_adapter.completions.create(model="support-bot", prompt="Two plus two", max_tokens=8)
    streamed = list(
        through_adapter.completions.create(
            model="support-bot",
            prompt="Two plus two",
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == plain.choices[0].text
    assert streamed[-1].usage.completion_tokens == plain.usage.completion_tokens > 0


def test_the_engine_is_not_reachable_through_the_adapter_without_a_tenant_key(server):
    from tests.serving.adapter.conftest import make_config as config_for

    adapter = ServerThread(Adapter(parse_config(config_for(upstream_model="demo")), server.url).app).start()
    try:
        stranger = openai.OpenAI(base_url=f"{adapter.url}/v1", api_key="aicp_sk_0_wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            stranger.chat.completions.create(model="chat", messages=QUESTION, max_tokens=4)
    finally:
        adapter.stop()
