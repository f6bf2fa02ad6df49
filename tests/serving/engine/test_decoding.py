"""Decoding: greedy, top-k, seeds, repetition penalty, stop sequences, max_tokens — unit and end to end."""

from __future__ import annotations

import torch

from serving.engine.detok import IncrementalDetokenizer
from serving.engine.sampling import SamplingParams, apply_repetition_penalty, choose_token, top_k_top_p_filter

PROMPT = "Once upon a time"


def complete(client, **kwargs):
    kwargs = {"model": "demo", "prompt": PROMPT, "max_tokens": 24, **kwargs}
    return client.completions.create(**kwargs).choices[0]


# -- unit ---------------------------------------------------------------------------------------------------------


def test_repetition_penalty_lowers_seen_tokens_only():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    out = apply_repetition_penalty(logits, torch.tensor([0, 1, 1]), 2.0)
    assert out.tolist() == [1.0, -2.0, 0.5, 3.0]  # positive divided, negative multiplied, unseen untouched
    assert logits.tolist() == [2.0, -1.0, 0.5, 3.0]  # the input is not modified
    assert torch.equal(apply_repetition_penalty(logits, torch.tensor([0]), 1.0), logits)


def test_repetition_penalty_changes_the_greedy_choice():
    logits = torch.tensor([3.0, 2.0, 0.0])
    params = SamplingParams(temperature=0, repetition_penalty=1.8)
    assert choose_token(logits, params, torch.tensor([0]), torch.Generator()) == 1
    assert choose_token(logits, SamplingParams(temperature=0), torch.tensor([0]), torch.Generator()) == 0


def test_repetition_penalty_rounds_as_vllm_does():
    """vLLM multiplies by the penalty's float32 reciprocal (``apply_repetition_penalties_torch``); ``x / 1.3``
    differs from that in the last bit for some logits, which can flip a greedy choice between near-equal ones."""
    logits = torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 5
    penalty = torch.tensor(1.3)
    vllm = logits * torch.where(logits > 0, 1.0 / penalty, penalty)
    assert torch.equal(apply_repetition_penalty(logits, torch.arange(10_000), 1.3), vllm)
    assert not torch.equal(vllm, torch.where(logits > 0, logits / 1.3, logits * 1.3))


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isinf(top_k_top_p_filter(logits, 2, 1.0)).tolist() == [False, False, True, True]
    assert torch.isinf(top_k_top_p_filter(logits, 0, 0.7)).tolist() == [False, False, True, True]
    assert torch.isinf(top_k_top_p_filter(logits, 0, 0.4)).tolist() == [False, True, True, True]


def test_seeded_sampling_is_reproducible_unit():
    logits = torch.randn(100, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=1.0, seed=7)

    def draws():
        gen = params.make_generator()
        return [choose_token(logits, params, torch.empty(0), gen) for _ in range(20)]

    assert draws() == draws()


class _CharTokenizer:
    def decode(self, ids, **_):
        return "".join(chr(i) for i in ids)


def test_detokenizer_holds_back_partial_stop_and_cuts_at_stop():
    detok = IncrementalDetokenizer(_CharTokenizer(), stop=["END"])
    emitted = [detok.add(ord(c)) for c in "abcEN"]
    assert "".join(t for t, _ in emitted) == "abc"  # "EN" may start "END": held back
    assert detok.add(ord("D")) == ("", True)
    assert detok.output_text == "abc"


class _PieceTokenizer:
    PIECES = {1: "x", 2: "abc"}

    def decode(self, ids, **_):
        return "".join(self.PIECES[i] for i in ids)


def test_detokenizer_stops_at_the_stop_string_completed_first():
    """Two stop strings matched within one token "abc": the one that ends first wins, then the earlier in the list
    (vLLM's ``check_stop_strings``), not the one that starts first."""
    for stop, kept in ((["abc", "b"], "xa"), (["bc", "abc"], "xa"), (["abc", "bc"], "x")):
        detok = IncrementalDetokenizer(_PieceTokenizer(), stop=stop)
        assert detok.add(1) == ("x", False)
        assert detok.add(2) == (kept[1:], True), stop
        assert detok.output_text == kept, stop


def test_detokenizer_flushes_held_back_text_when_no_stop():
    detok = IncrementalDetokenizer(_CharTokenizer(), stop=["END"])
    text = "".join(detok.add(ord(c))[0] for c in "xyE")
    assert text + detok.flush() == "xyE"


# -- end to end ---------------------------------------------------------------------------------------------------


def test_greedy_is_deterministic(client):
    first = complete(client, temperature=0)
    assert all(complete(client, temperature=0).text == first.text for _ in range(2))


def test_top_k_1_equals_greedy(client):
    assert (
        complete(client, temperature=1.0, top_p=0.9, extra_body={"top_k": 1}).text
        == complete(client, temperature=0).text
    )


def test_seed_reproduces_a_sample_and_seeds_differ(client):
    a = complete(client, temperature=1.5, seed=123)
    assert complete(client, temperature=1.5, seed=123).text == a.text
    others = {complete(client, temperature=1.5, seed=s).text for s in (1, 2, 3)}
    assert others - {a.text}  # at least one other seed gives a different sample


def test_repetition_penalty_changes_the_output(client):
    prompt = "The cat sat on the mat. The cat sat on the mat. The cat"
    plain = complete(client, prompt=prompt, temperature=0, max_tokens=16)
    penalised = complete(client, prompt=prompt, temperature=0, max_tokens=16, extra_body={"repetition_penalty": 2.0})
    assert plain.text != penalised.text


def test_stop_sequence_stops_and_is_not_included(client):
    full = complete(client, temperature=0, max_tokens=24, extra_body={"ignore_eos": True}).text
    assert len(full) >= 6
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    out = complete(client, temperature=0, max_tokens=24, stop=[stop, "never-appears"], extra_body={"ignore_eos": True})
    assert out.finish_reason == "stop"
    assert out.text == full[: full.index(stop)]


def test_max_tokens_gives_length(client):
    resp = client.completions.create(
        model="demo", prompt=PROMPT, max_tokens=5, temperature=0, extra_body={"ignore_eos": True}
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 5
