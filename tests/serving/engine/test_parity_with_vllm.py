"""Parity with vLLM: the same demo model in float32, greedy decoding; our engine emits vLLM's tokens, and stop
sequences, ``max_tokens`` and the repetition penalty act on them the way they act in vLLM.

What is compared: token ids, and everything both servers answer over HTTP (text, ``finish_reason``, usage). vLLM
returns the prompt's and the output's token ids when asked (``return_token_ids``); our engine's API has no such
option, so our ids are read from the engine's own record of the request (the ``Sequence`` that ``Engine.submit``
hands the HTTP layer; the spy only looks, it changes nothing). Both engines get the identical request body, and each
batch of requests is sent concurrently, so both batch them (ours admits and retires sequences mid-batch, on its
left-padded cache).

Prompts: windows of exactly 32 tokens of the demo model's own corpus (``serving/demo_model/corpus.txt``), one
starting at each line, kept where decoding the 32 ids and encoding the text again gives the same 32 ids (so the
text sent is exactly those tokens; both engines' prompt ids are checked against them); the first 24 are used. The
chat endpoint sends the same text as the user message.

Why exact equality: both engines run float32 (vLLM's CPU backend would otherwise cast the model to bfloat16), and
the demo model has clear argmax gaps (conftest, ``DEMO_TRAIN_STEPS``), so the last-bit differences between two
attention implementations do not reach a greedy choice. A divergence names the prompt (index and text) and the first
output token where the engines part (index and both tokens).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import openai
import pytest
import torch

from serving.demo_model import CORPUS
from tests.vllm_runtime import VllmServer

PROMPT_COUNT, PROMPT_TOKENS = 24, 32
ENDPOINTS = ("completions", "chat")
CONCURRENCY = 8  # requests in flight per engine: enough to make both batch, small for a shared 2-core machine


@dataclass(frozen=True)
class Prompt:
    index: int
    ids: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]


# -- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm(demo_model_dir, tmp_path_factory):
    """``vllm serve`` on the demo model, float32, for this module only (its CPU backend busy-polls while it serves)."""
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    extra = ("--dtype", "float32", "--max-model-len", "512")
    srv = VllmServer(demo_model_dir, served_model_name="demo", extra=extra, log=log).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_model_dir, local_files_only=True)


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[Prompt]:
    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = []
    for start in range(len(lines)):
        ids = tokenizer.encode(" ".join(lines[start:]), add_special_tokens=False)[:PROMPT_TOKENS]
        text = tokenizer.decode(ids)
        if len(ids) == PROMPT_TOKENS and tokenizer.encode(text) == ids:
            found.append(Prompt(len(found), tuple(ids), text))
        if len(found) == PROMPT_COUNT:
            return found
    pytest.fail(f"the corpus gives only {len(found)} prompts of exactly {PROMPT_TOKENS} tokens")


@pytest.fixture
def our_sequences(server, monkeypatch) -> dict:
    """Our engine's ``Sequence`` for each request it receives during the test, by prompt ids."""
    seen = {}
    submit = server.engine.submit

    def recording_submit(prompt_ids, params):
        seq, queue = submit(prompt_ids, params)
        seen[tuple(seq.prompt_ids)] = seq
        return seq, queue

    monkeypatch.setattr(server.engine, "submit", recording_submit)
    return seen


@pytest.fixture
def run_both(server, vllm, prompts, our_sequences):
    """``run(endpoint, {prompt index: request params})`` → ``{prompt index: (our Answer, vLLM's Answer)}``."""
    ours, theirs = _client(server.url), _client(vllm.url)

    def run(endpoint: str, params_by_prompt: dict[int, dict]) -> dict[int, tuple[Answer, Answer]]:
        our_sequences.clear()
        jobs = [(i, prompts[i].text, params) for i, params in params_by_prompt.items()]
        with ThreadPoolExecutor(CONCURRENCY) as our_pool, ThreadPoolExecutor(CONCURRENCY) as vllm_pool:
            our_bodies = [our_pool.submit(_request, ours, endpoint, text, params) for _, text, params in jobs]
            vllm_bodies = [vllm_pool.submit(_request, theirs, endpoint, text, params) for _, text, params in jobs]
            our_bodies, vllm_bodies = [f.result() for f in our_bodies], [f.result() for f in vllm_bodies]
        results = {}
        for (i, _, _), our_body, vllm_body in zip(jobs, our_bodies, vllm_bodies, strict=True):
            vllm_answer = _answer(endpoint, vllm_body, *_vllm_ids(endpoint, vllm_body))
            seq = our_sequences.get(vllm_answer.prompt_ids)
            our_ids = (tuple(seq.prompt_ids), tuple(seq.output_ids)) if seq else ((), ())
            results[i] = (_answer(endpoint, our_body, *our_ids), vllm_answer)
        return results

    return run


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120)


def _request(client: openai.OpenAI, endpoint: str, text: str, params: dict) -> dict:
    """One greedy request; the same body goes to both engines (ours ignores ``return_token_ids``)."""
    params = {**params, "extra_body": {"return_token_ids": True, **params.get("extra_body", {})}}
    if endpoint == "chat":
        messages = [{"role": "user", "content": text}]
        return client.chat.completions.create(model="demo", messages=messages, temperature=0, **params).model_dump()
    return client.completions.create(model="demo", prompt=text, temperature=0, **params).model_dump()


def _vllm_ids(endpoint: str, body: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    choice = body["choices"][0]
    prompt_ids = body["prompt_token_ids"] if endpoint == "chat" else choice["prompt_token_ids"]
    return tuple(prompt_ids), tuple(choice["token_ids"])


def _answer(endpoint: str, body: dict, prompt_ids: tuple[int, ...], token_ids: tuple[int, ...]) -> Answer:
    choice = body["choices"][0]
    text = choice["message"]["content"] if endpoint == "chat" else choice["text"]
    usage = body["usage"]
    return Answer(
        text or "", choice["finish_reason"], usage["prompt_tokens"], usage["completion_tokens"], prompt_ids, token_ids
    )


def every_prompt(prompts: list[Prompt], **params) -> dict[int, dict]:
    return {p.index: params for p in prompts}


# -- comparison ---------------------------------------------------------------------------------------------------


def assert_same(results: dict[int, tuple[Answer, Answer]], prompts: list[Prompt], tokenizer, what: str) -> None:
    """Every prompt's answers are equal; otherwise one line per differing prompt says where they part."""
    problems = [
        f"prompt {i} {prompts[i].text!r}: {reason}"
        for i, (ours, theirs) in sorted(results.items())
        if (reason := _difference(ours, theirs, tokenizer))
    ]
    assert not problems, f"{what}: {len(problems)} of {len(results)} prompts differ from vLLM\n" + "\n".join(problems)


def _difference(ours: Answer, theirs: Answer, tokenizer) -> str | None:
    if ours == theirs:
        return None
    if not ours.prompt_ids:
        return f"our engine saw no request with vLLM's prompt ids {list(theirs.prompt_ids)} (tokenised differently?)"
    if ours.token_ids != theirs.token_ids:
        at = next(
            (k for k, (a, b) in enumerate(zip(ours.token_ids, theirs.token_ids, strict=False)) if a != b),
            min(len(ours.token_ids), len(theirs.token_ids)),
        )
        common = tokenizer.decode(list(ours.token_ids[:at]))
        return (
            f"output tokens part at index {at} (after {common!r}): ours {_token(ours.token_ids, at, tokenizer)}, "
            f"vLLM {_token(theirs.token_ids, at, tokenizer)}; ours {ours.text!r} ({ours.finish_reason}), "
            f"vLLM {theirs.text!r} ({theirs.finish_reason})"
        )
    fields = ("text", "finish_reason", "prompt_tokens", "completion_tokens")
    return "same tokens, but " + ", ".join(
        f"{name}: ours {getattr(ours, name)!r}, vLLM {getattr(theirs, name)!r}"
        for name in fields
        if getattr(ours, name) != getattr(theirs, name)
    )


def _token(ids: tuple[int, ...], at: int, tokenizer) -> str:
    return f"{ids[at]} {tokenizer.decode([ids[at]])!r}" if at < len(ids) else "(end of output)"


# -- tests --------------------------------------------------------------------------------------------------------


def test_prompts_are_distinct_windows_of_exactly_32_tokens(prompts, tokenizer):
    assert len(prompts) == PROMPT_COUNT >= 20
    assert all(
        len(tokenizer.encode(p.text)) == PROMPT_TOKENS and tokenizer.encode(p.text) == list(p.ids) for p in prompts
    )
    assert len({p.ids for p in prompts}) == PROMPT_COUNT


def test_both_engines_run_float32(server, vllm):
    assert server.engine.model.dtype == torch.float32
    # vLLM's engine states its dtype once, as it starts; without --dtype float32 it says bfloat16 here
    assert "dtype=torch.float32," in vllm.log.read_text(errors="replace"), vllm.tail()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_greedy_output_equals_vllms(endpoint, run_both, prompts, tokenizer):
    results = run_both(endpoint, every_prompt(prompts, max_tokens=32))
    assert_same(results, prompts, tokenizer, f"/v1/{endpoint}, greedy, max_tokens=32")
    theirs = [answer for _, answer in results.values()]
    if endpoint == "completions":
        assert {(a.prompt_ids, a.prompt_tokens) for a in theirs} == {(p.ids, PROMPT_TOKENS) for p in prompts}
    # Not vacuous: some outputs end with EOS, others run to max_tokens, and they are not all alike.
    assert {a.finish_reason for a in theirs} == {"stop", "length"}
    assert len({a.token_ids for a in theirs}) >= PROMPT_COUNT // 3


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("max_tokens", [1, 7, 48])
def test_max_tokens_ends_both_at_the_same_token(endpoint, max_tokens, run_both, prompts, tokenizer):
    params = every_prompt(prompts, max_tokens=max_tokens, extra_body={"ignore_eos": True})
    results = run_both(endpoint, params)
    assert_same(results, prompts, tokenizer, f"/v1/{endpoint}, max_tokens={max_tokens}, ignore_eos")
    assert {(a.finish_reason, a.completion_tokens) for _, a in results.values()} == {("length", max_tokens)}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_eos_as_the_last_allowed_token_is_a_stop_in_both(endpoint, run_both, prompts, tokenizer):
    """Where greedy decoding ends with EOS as token n: max_tokens n-1 gives "length", n and n+1 give "stop"."""
    natural = run_both(endpoint, every_prompt(prompts, max_tokens=32))
    ends = {
        i: a.completion_tokens for i, (_, a) in natural.items() if a.finish_reason == "stop" and a.completion_tokens > 1
    }
    assert len(ends) >= 5, natural
    for offset, expected in ((-1, "length"), (0, "stop"), (1, "stop")):
        results = run_both(endpoint, {i: {"max_tokens": n + offset} for i, n in ends.items()})
        assert_same(results, prompts, tokenizer, f"/v1/{endpoint}, max_tokens = EOS position {offset:+d}")
        assert {a.finish_reason for _, a in results.values()} == {expected}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_stop_sequences_cut_both_at_the_same_place(endpoint, run_both, prompts, tokenizer):
    """A stop string taken from the middle of each greedy output (often across a token boundary), next to one
    that never appears: both stop there, leave the stop string out of the text, and count the same tokens."""
    full = run_both(endpoint, every_prompt(prompts, max_tokens=24, extra_body={"ignore_eos": True}))
    stops = {}
    for i, (_, theirs) in full.items():
        middle = len(theirs.text) // 2
        if len(theirs.text) >= 6:
            stops[i] = theirs.text[middle : middle + 3]
    assert len(stops) >= PROMPT_COUNT // 2
    params = {
        i: {"max_tokens": 24, "stop": [stop, "never-appears"], "extra_body": {"ignore_eos": True}}
        for i, stop in stops.items()
    }
    results = run_both(endpoint, params)
    assert_same(results, prompts, tokenizer, f"/v1/{endpoint}, stop strings")
    for i, (_, theirs) in results.items():
        assert theirs.finish_reason == "stop"
        assert theirs.text == full[i][1].text[: full[i][1].text.index(stops[i])]


def test_the_stop_string_completed_first_wins(run_both, prompts, tokenizer):
    """Two stop strings matched within one token: vLLM keeps the one that *completes* first, then the earlier in the
    list (``vllm/v1/engine/detokenizer.py``, ``check_stop_strings``), not the one that starts first. For a token
    " the", ``stop=[" the", "th"]`` keeps the space; so does ``stop=["the", " the"]`` (same end, first in the list).
    Our engine kept the one that starts first until ``serving/engine/detok.py`` took vLLM's rule."""
    full = run_both("completions", every_prompt(prompts, max_tokens=24, extra_body={"ignore_eos": True}))
    cases = {}
    for i, (_, theirs) in full.items():
        text, ends = theirs.text, _token_ends(theirs.token_ids, tokenizer)
        for start, end in zip([0, *ends], ends, strict=False):
            piece = text[start:end]
            if len(piece) >= 3 and text.find(piece) == start and text.find(piece[1:-1]) == start + 1:
                cases[i] = (text[: start + 1], [piece, piece[1:-1]], [piece[1:], piece])
                break
    assert len(cases) >= 5, full
    for which in (1, 2):
        params = {
            i: {"max_tokens": 24, "stop": case[which], "extra_body": {"ignore_eos": True}} for i, case in cases.items()
        }
        results = run_both("completions", params)
        assert_same(results, prompts, tokenizer, f"/v1/completions, overlapping stop strings {which}")
        assert {i: a.text for i, (_, a) in results.items()} == {i: case[0] for i, case in cases.items()}


def _token_ends(token_ids: tuple[int, ...], tokenizer) -> list[int]:
    """Where each output token's text ends in the output text (special tokens add nothing)."""
    decode = partial(tokenizer.decode, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return [len(decode(list(token_ids[: k + 1]))) for k in range(len(token_ids))]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("penalty", [1.3, 2.0])
def test_repetition_penalty_acts_the_same(endpoint, penalty, run_both, prompts, tokenizer):
    plain = run_both(endpoint, every_prompt(prompts, max_tokens=32))
    penalised = run_both(endpoint, every_prompt(prompts, max_tokens=32, extra_body={"repetition_penalty": penalty}))
    assert_same(penalised, prompts, tokenizer, f"/v1/{endpoint}, repetition_penalty={penalty}")
    changed = [i for i in plain if plain[i][1].token_ids != penalised[i][1].token_ids]
    assert len(changed) >= PROMPT_COUNT // 4, "the penalty should change many greedy outputs"
