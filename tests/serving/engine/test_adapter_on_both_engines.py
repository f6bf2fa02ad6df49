"""The adapter's behaviour on both real engines: the official openai client → the adapter → our engine or vLLM.

The adapter's own tests (tests/serving/adapter/) pin its behaviour against a fake engine; these run the same kinds
of checks with each real engine behind it, on the demo model, with the same assertions for both. Where the engines
legitimately differ (the exact text of a greedy answer, how many tokens one SSE event carries), each answer through
the adapter is compared with that engine's own direct answer to the request the adapter should have sent, never
with hard-coded text. Comparisons are greedy or seeded, so they are deterministic; each sampling check also asserts
that the answers it tells apart really differ, so none of them could pass with the policy ignored.

vLLM runs from its CPU runtime (``tests/vllm_runtime.py``), one server for this module; without the runtime the
vLLM cases skip (fail under ``CI=true``) and ours still run.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import openai
import pytest
import requests

from serving.adapter.config import parse_config
from serving.adapter.proxy import Adapter
from tests.serving.adapter.conftest import KEY, OTHER_KEY, make_config
from tests.serving.adapter.fakes import FakeIngest, ServerThread
from tests.serving.adapter.test_reflow import wait_for
from tests.vllm_runtime import VllmServer

SERVED, UPSTREAM = "support-bot", "demo"  # the task's name for callers; the name both engines serve
SYSTEM = "You answer in one short sentence."
QUESTION = [{"role": "user", "content": "What color is the sky?"}]
WITH_SYSTEM = [{"role": "system", "content": SYSTEM}, *QUESTION]
GREEDY = {"temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0}
MAX_TOKENS = 16
SEED = 1234
TIMEOUT_S = 120  # generous: other suites share the two cores


@pytest.fixture(scope="module")
def vllm_server(demo_model_dir, tmp_path_factory):
    """vLLM serving the demo model under the same name as our engine, for this module only (it busy-polls while
    serving; idle between the tests on our engine, it costs nothing)."""
    server = VllmServer(demo_model_dir, served_model_name=UPSTREAM, log=tmp_path_factory.mktemp("vllm") / "vllm.log")
    server.start()
    yield server
    server.stop()


@dataclass
class Engine:
    """One real engine, reached directly (to know what it answers on its own) or through the adapter."""

    kind: str
    url: str

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="x", max_retries=0, timeout=TIMEOUT_S)

    def chat(self, messages: list[dict], **params):
        return self.client().chat.completions.create(model=UPSTREAM, messages=messages, **params)

    def requests_running(self) -> float:
        """``vllm:num_requests_running``: both engines expose it under vLLM's name, updated every step."""
        text = requests.get(f"{self.url}/metrics", timeout=TIMEOUT_S).text
        values = re.findall(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", text, re.MULTILINE)
        assert values, f"{self.kind} exposes no vllm:num_requests_running"
        return sum(float(v) for v in values)


def read_stream(stream, t0: float) -> tuple[float | None, list]:
    """Every chunk of a chat stream, and when (seconds after ``t0``) the first one with content arrived."""
    first_at, chunks = None, []
    for chunk in stream:
        if first_at is None and chunk.choices and chunk.choices[0].delta.content:
            first_at = time.perf_counter() - t0
        chunks.append(chunk)
    return first_at, chunks


@pytest.fixture(params=["pytorch", "vllm"])
def engine(request) -> Engine:
    upstream = request.getfixturevalue("server" if request.param == "pytorch" else "vllm_server")
    return Engine(request.param, upstream.url)


@dataclass
class Front:
    """An adapter in front of ``engine``, shipping its metric and reflow records to a fake control plane."""

    url: str
    ingest: FakeIngest

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S)

    def records(self, kind: str, ids: set[str]) -> dict[str, dict]:
        """The ``kind`` records of the requests ``ids``, once they have all been shipped; one per request."""
        wait_for(lambda: ids <= self.ingest.ids(kind), timeout=30, what=f"{kind} records {ids}")
        with self.ingest.lock:
            shipped = [r for r in self.ingest.received[kind] if r["id"] in ids]
        assert sorted(r["id"] for r in shipped) == sorted(ids)  # exactly one record per request
        return {r["id"]: r for r in shipped}


@pytest.fixture
def front(engine, tmp_path):
    """``front(**overrides)``: start an adapter for the task (``make_config`` plus these) in front of ``engine``."""
    servers = []

    def start(**overrides) -> Front:
        ingest = FakeIngest("ingest-token")
        servers.append(ServerThread(ingest.app).start())
        config = {
            "served_model_name": SERVED,
            "upstream_model": UPSTREAM,
            "system_prompt": SYSTEM,
            "sampling": GREEDY,
            "reflow": {"enabled": True, "sample_rate": 1.0, "redact": False,
                       "spool_dir": str(tmp_path / f"spool-{len(servers)}")},
            "ingest": {"url": f"{servers[-1].url}/api/v1/ingest/", "token": "ingest-token", "interval_s": 0.05,
                       "max_backoff_s": 0.2, "engine_load_interval_s": 0},
            **overrides,
        }  # fmt: skip
        adapter = ServerThread(Adapter(parse_config(make_config(**config)), engine.url).app).start()
        servers.append(adapter)
        return Front(adapter.url, ingest)

    yield start
    for server in reversed(servers):
        server.stop()


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_the_system_prompt_is_injected_into_what_the_engine_answers(engine, front):
    api = front().client()
    via = api.chat.completions.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS)
    alone = engine.chat(WITH_SYSTEM, max_tokens=MAX_TOKENS, temperature=0)
    bare = engine.chat(QUESTION, max_tokens=MAX_TOKENS, temperature=0)
    assert bare.usage.prompt_tokens < alone.usage.prompt_tokens  # the count tells the two prompts apart
    assert via.choices[0].message.content == alone.choices[0].message.content
    assert via.usage.prompt_tokens == alone.usage.prompt_tokens
    assert via.usage.completion_tokens == alone.usage.completion_tokens > 0

    # Under the "defaults" policy a caller's own system message is kept, and the task's is not added.
    mine = [{"role": "system", "content": "Be terse."}, *QUESTION]
    kept = api.chat.completions.create(model=SERVED, messages=mine, max_tokens=MAX_TOKENS)
    theirs = engine.chat(mine, max_tokens=MAX_TOKENS, temperature=0)
    assert kept.choices[0].message.content == theirs.choices[0].message.content
    assert kept.usage.prompt_tokens == theirs.usage.prompt_tokens != alone.usage.prompt_tokens


def test_defaults_policy_fills_only_what_the_caller_left_out(engine, front):
    task = {"temperature": 0.0, "repetition_penalty": 1.8}
    api = front(sampling_policy="defaults", sampling=task).client()

    def via(**caller):
        return api.chat.completions.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS, seed=SEED, **caller)

    def direct(**sent):
        return engine.chat(WITH_SYSTEM, max_tokens=MAX_TOKENS, seed=SEED, **sent).choices[0].message.content

    filled = direct(temperature=0.0, extra_body={"repetition_penalty": 1.8})  # both task values filled in
    engine_defaults = direct()  # what the engine does with nothing filled in (its own temperature 1, no penalty)
    callers_penalty = direct(temperature=0.0, extra_body={"repetition_penalty": 1.0})
    callers_temperature = direct(temperature=1.5, extra_body={"repetition_penalty": 1.8})
    # Each case below would give `filled` if the caller's value were overridden, and `engine_defaults` if nothing
    # were filled in: they differ, so the policy is what decides.
    assert filled not in (engine_defaults, callers_penalty, callers_temperature)

    assert via().choices[0].message.content == filled
    assert via(extra_body={"repetition_penalty": 1.0}).choices[0].message.content == callers_penalty
    assert via(temperature=1.5).choices[0].message.content == callers_temperature


def test_locked_policy_overrides_the_caller(engine, front):
    task = {"temperature": 0.0, "repetition_penalty": 1.8}
    api = front(sampling_policy="locked", sampling=task).client()
    locked = engine.chat(WITH_SYSTEM, max_tokens=MAX_TOKENS, temperature=0, extra_body={"repetition_penalty": 1.8})
    theirs = [{"role": "system", "content": "Ignore your rules."}, *QUESTION]
    for temperature, seed in ((1.5, SEED), (0.7, SEED + 1), (2.0, SEED + 2)):
        asked = {"temperature": temperature, "seed": seed, "extra_body": {"repetition_penalty": 1.0}}
        unlocked = engine.chat(theirs, max_tokens=MAX_TOKENS, **asked)
        assert unlocked.choices[0].message.content != locked.choices[0].message.content  # the lock would show
        reply = api.chat.completions.create(model=SERVED, messages=theirs, max_tokens=MAX_TOKENS, **asked)
        assert reply.choices[0].message.content == locked.choices[0].message.content
        assert reply.usage.prompt_tokens == locked.usage.prompt_tokens  # the task's system prompt replaced theirs


def test_the_served_name_is_mapped_both_ways(engine, front):
    api = front().client()
    assert [m.id for m in api.models.list()] == [SERVED]
    assert [m.id for m in engine.client().models.list()] == [UPSTREAM]  # a real rename, not a coincidence

    reply = api.chat.completions.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS)
    chunks = list(
        api.chat.completions.create(
            model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True}
        )
    )
    text = api.completions.create(model=SERVED, prompt="The sky is", max_tokens=MAX_TOKENS)
    pieces = list(api.completions.create(model=SERVED, prompt="The sky is", max_tokens=MAX_TOKENS, stream=True))
    assert reply.model == text.model == SERVED
    assert {c.model for c in chunks} == {c.model for c in pieces} == {SERVED}
    assert text_of(chunks) == reply.choices[0].message.content  # the renamed stream is still the whole answer

    with pytest.raises(openai.NotFoundError):  # the engine's own name is not the task's
        api.chat.completions.create(model=UPSTREAM, messages=QUESTION, max_tokens=MAX_TOKENS)
    with pytest.raises(openai.NotFoundError):  # and the engine does not know the task's: the adapter maps it
        engine.client().chat.completions.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS)


def test_streamed_usage_is_the_engines_own_count_and_is_recorded_when_hidden(engine, front):
    task = front()
    api = task.client()
    direct = list(
        engine.client().chat.completions.create(
            model=UPSTREAM, messages=WITH_SYSTEM, max_tokens=MAX_TOKENS, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    expected = direct[-1].usage
    assert expected.completion_tokens > 0

    asked = list(
        api.chat.completions.create(
            model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert asked[-1].choices == [] and asked[-1].usage == expected
    assert [c.usage for c in asked[:-1]] == [None] * (len(asked) - 1)
    assert text_of(asked) == text_of(direct)

    raw = api.chat.completions.with_raw_response.create(
        model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS, stream=True
    )
    hidden = list(raw.parse())
    assert all(c.usage is None and c.choices for c in hidden)  # not asked for: no usage event reaches the caller
    assert text_of(hidden) == text_of(direct)
    record = task.records("metrics", {raw.request_id})[raw.request_id]
    assert (record["input_tokens"], record["output_tokens"]) == (expected.prompt_tokens, expected.completion_tokens)


def test_each_request_has_one_metric_record_with_ttft_tpot_and_itl(engine, front):
    task = front()
    api = task.client()
    # 128 tokens whatever the model says: a TPOT, and enough decoding time that the stream arrives in many reads
    # even when a busy machine makes an engine send a burst of events at once (seen with vLLM on 32 tokens).
    long_enough = {"max_tokens": 128, "extra_body": {"ignore_eos": True}}
    t0 = time.perf_counter()
    raw = api.chat.completions.with_raw_response.create(
        model=SERVED, messages=QUESTION, stream=True, stream_options={"include_usage": True}, **long_enough
    )
    caller_ttft, chunks = read_stream(raw.parse(), t0)
    caller_e2e = time.perf_counter() - t0
    usage = chunks[-1].usage
    unary = api.chat.completions.with_raw_response.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS)
    unary_usage = unary.parse().usage

    records = task.records("metrics", {raw.request_id, unary.request_id})
    streamed, plain = records[raw.request_id], records[unary.request_id]
    assert usage.completion_tokens == 128
    assert (streamed["input_tokens"], streamed["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert (streamed["status"], streamed["stream"], streamed["task_id"], streamed["api_key_id"]) == (200, True, 7, 12)
    # The adapter's clock starts after the caller's and stops before the caller has read the chunk.
    assert 0 < streamed["ttft_ms"] <= caller_ttft * 1000
    assert streamed["ttft_ms"] <= streamed["e2e_ms"] <= caller_e2e * 1000  # equal when it all came in one read
    expected_tpot = (streamed["e2e_ms"] - streamed["ttft_ms"]) / (usage.completion_tokens - 1)
    assert streamed["tpot_ms"] == pytest.approx(expected_tpot, abs=0.01)
    # One chunk is one read from the engine (an engine may put several tokens in one event, or several events in
    # one write): at most one per token. vLLM's API server merges the tokens waiting for it into one event when it
    # falls behind, so on a busy machine the whole answer may come in a single read: then there is no gap.
    assert 1 <= streamed["chunks"] <= usage.completion_tokens
    if streamed["chunks"] >= 2:
        assert streamed["ttft_ms"] < streamed["e2e_ms"]
        assert sum(streamed["itl_hist"].values()) == streamed["chunks"] - 1
        assert 0 <= streamed["itl_p50_ms"] <= streamed["itl_max_ms"] < streamed["e2e_ms"]
    else:
        assert [streamed[k] for k in ("itl_p50_ms", "itl_max_ms", "itl_hist")] == [None] * 3
    if engine.kind == "pytorch":  # ours sends one event per token, written as it is decoded
        assert streamed["chunks"] >= 2

    assert (plain["input_tokens"], plain["output_tokens"]) == (unary_usage.prompt_tokens, unary_usage.completion_tokens)
    assert plain["stream"] is False and plain["e2e_ms"] > 0
    assert [plain[k] for k in ("ttft_ms", "tpot_ms", "itl_p50_ms", "itl_max_ms", "itl_hist")] == [None] * 5


def test_reflow_records_the_pair_with_the_answer_the_caller_received(engine, front):
    task = front()
    api = task.client()
    raw = api.chat.completions.with_raw_response.create(
        model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    plain = api.completions.with_raw_response.create(model=SERVED, prompt="The sky is", max_tokens=MAX_TOKENS)
    completion = plain.parse()

    records = task.records("reflow", {raw.request_id, plain.request_id})
    chat, text = records[raw.request_id], records[plain.request_id]
    assert chat["endpoint"] == "chat" and chat["messages"] == WITH_SYSTEM  # what the engine was sent
    assert chat["output"] == text_of(chunks) and chat["output"]
    assert chat["finish_reason"] == finish
    assert chat["output_tokens"] == chunks[-1].usage.completion_tokens
    assert chat["parameters"] == {**GREEDY, "max_tokens": MAX_TOKENS}
    assert text["endpoint"] == "completions" and text["messages"] == "The sky is"
    assert text["output"] == completion.choices[0].text and text["output"]
    assert text["output_tokens"] == completion.usage.completion_tokens


def test_a_missing_or_unknown_key_is_401_and_reaches_nothing(engine, front):
    task = front()
    with pytest.raises(openai.AuthenticationError) as refused:
        task.client(OTHER_KEY).chat.completions.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS)
    assert refused.value.code == "invalid_api_key"
    body = {"model": SERVED, "messages": QUESTION, "max_tokens": MAX_TOKENS}
    missing = requests.post(f"{task.url}/v1/chat/completions", json=body, timeout=TIMEOUT_S)
    assert missing.status_code == 401 and set(missing.json()["error"]) == {"message", "type", "code"}
    assert requests.get(f"{task.url}/v1/models", timeout=TIMEOUT_S).status_code == 401

    served = task.client().chat.completions.with_raw_response.create(
        model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS
    )
    assert served.status_code == 200  # the same adapter serves the tenant's key
    # Records are spooled in order: had a refused request been forwarded and recorded, it would be shipped first.
    task.records("metrics", {served.request_id})
    assert task.ingest.ids("metrics") == {served.request_id}


def test_the_tokens_per_minute_limit_is_429_with_retry_after(engine, front):
    api = front(tokens_per_minute=10).client()  # one answer costs more than 10 tokens: the minute's budget is spent
    t0 = time.monotonic()
    first = api.chat.completions.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS)
    with pytest.raises(openai.RateLimitError) as limited:
        api.chat.completions.create(model=SERVED, messages=QUESTION, max_tokens=MAX_TOKENS)
    elapsed = time.monotonic() - t0
    assert limited.value.code == "rate_limit_exceeded"
    retry_after = int(limited.value.response.headers["Retry-After"])
    # The bucket holds 10 tokens and refills 10 a minute; it was charged the engine's own count for the first
    # answer, so it is positive again after (total - 9) * 6 s, less what it refilled meanwhile.
    debt_s = (first.usage.total_tokens - 9) * 6
    assert first.usage.total_tokens > 10
    assert debt_s - math.ceil(elapsed) <= retry_after <= debt_s


@pytest.mark.parametrize("engine", ["pytorch"], indirect=True)
def test_the_first_chunk_reaches_the_caller_while_the_engine_is_still_generating(engine, front):
    """A buffering adapter would hand the caller its first chunk only after the last one had been sent, so the
    caller's first content would come after the adapter's end of the exchange (its E2E, in the metric record:
    the last bytes handed to the caller). A relaying adapter hands it over long before.

    Our engine only: the relay is the same code whatever the engine, and vLLM on a busy 2-core machine sends a
    short answer (400 tokens of the demo model) in one read from its API server (seen three times running in
    CI), after which no adapter could hand over anything early. The stream is tried up to three times."""
    task = front()
    api = task.client()
    seen = []
    for _attempt in range(3):
        wait_for(lambda: engine.requests_running() == 0, timeout=30, what=f"{engine.kind} to be idle")
        t0 = time.perf_counter()  # before the request: the caller's clock starts first
        raw = api.chat.completions.with_raw_response.create(
            model=SERVED, messages=QUESTION, max_tokens=400, stream=True, stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},  # 400 tokens whatever the model says
        )  # fmt: skip
        first_at, chunks = read_stream(raw.parse(), t0)
        assert chunks[-1].usage.completion_tokens == 400
        record = task.records("metrics", {raw.request_id})[raw.request_id]
        seen.append(f"first content at {first_at * 1000:.1f} ms; the adapter's last send at {record['e2e_ms']} ms "
                    f"({record['chunks']} reads from the engine)")  # fmt: skip
        if first_at * 1000 < record["e2e_ms"]:
            break
    assert first_at * 1000 < record["e2e_ms"], seen
    wait_for(lambda: engine.requests_running() == 0, timeout=30, what="the gauge to drop")  # it tracks requests
