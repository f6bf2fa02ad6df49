"""The metric math against values computed by hand (SPEC "Performance metrics", vllm's definitions)."""

from __future__ import annotations

import math

import pytest

from serving.bench.client import has_choices, has_object
from serving.bench.metrics import (
    RequestResult,
    format_table,
    meets_slos,
    parse_goodput,
    percentile,
    std,
    summarize,
    tpot,
)


def reference_percentile(values, p):
    """numpy.percentile's default, written out: rank (n-1)p/100, linear between its neighbours."""
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100
    lo = int(rank)
    hi = lo + 1 if lo + 1 < len(xs) else lo
    return xs[lo] * (1 - (rank - lo)) + xs[hi] * (rank - lo)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),  # numpy: 2.5
        ([1, 2, 3, 4], 90, 3.7),  # rank 2.7: 3 + 0.7
        ([1, 2, 3, 4], 99, 3.97),
        ([10, 0, 5], 25, 2.5),  # unsorted input; rank 0.5 between 0 and 5
        ([7], 99, 7.0),
        ([1, 2], 0, 1.0),
        ([1, 2], 100, 2.0),
    ],
)
def test_percentile_hand_values(values, p, expected):
    assert percentile(values, p) == pytest.approx(expected)


def test_percentile_matches_reference_on_many_samples():
    values = [((i * 7919) % 1009) / 13 for i in range(257)]
    for p in (0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100):
        assert percentile(values, p) == pytest.approx(reference_percentile(values, p))


def test_percentile_empty_is_nan_and_range_checked():
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_std_is_population_std():
    assert std([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2.0)


def result(ttft, latency, output_tokens, itl=(), prompt_tokens=10, success=True):
    return RequestResult(
        success=success,
        ttft=ttft,
        latency=latency,
        output_tokens=output_tokens,
        prompt_tokens=prompt_tokens,
        itl=list(itl),
        choice_chunks=len(itl) + 1,
    )


def test_tpot_excludes_first_token():
    # first token at 100 ms, 10 tokens, last at 280 ms: 9 gaps of 20 ms
    assert tpot(result(0.100, 0.280, 10)) == pytest.approx(0.020)
    assert tpot(result(0.100, 0.100, 1)) is None
    assert tpot(result(0.100, 0.100, 0)) is None


def test_summarize_hand_computed():
    a = result(0.100, 0.400, 4, itl=[0.1, 0.1, 0.1], prompt_tokens=10)  # TPOT 100 ms
    b = result(0.300, 0.500, 3, itl=[0.05, 0.15], prompt_tokens=20)  # TPOT 100 ms
    c = result(0.050, 0.050, 1, prompt_tokens=5)  # one token: no TPOT, no ITL
    failed = RequestResult(error="HTTP 500")
    s = summarize([a, b, c, failed], duration=2.0)
    assert s["completed"] == 3 and s["failed"] == 1
    assert s["total_input_tokens"] == 35 and s["total_output_tokens"] == 8
    assert s["request_throughput"] == pytest.approx(1.5)
    assert s["output_throughput"] == pytest.approx(4.0)
    assert s["total_token_throughput"] == pytest.approx(21.5)
    assert s["mean_ttft_ms"] == pytest.approx(150.0)
    assert s["median_ttft_ms"] == pytest.approx(100.0)
    assert s["p99_ttft_ms"] == pytest.approx(100 + 200 * 0.98)  # rank 1.98 between 100 and 300
    assert s["mean_tpot_ms"] == pytest.approx(100.0)  # only a and b
    assert s["mean_itl_ms"] == pytest.approx(100.0)  # pooled: 0.1,0.1,0.1,0.05,0.15
    assert s["median_itl_ms"] == pytest.approx(100.0)
    assert s["p90_itl_ms"] == pytest.approx(130.0)  # rank 3.6 between 100 and 150
    assert s["mean_e2el_ms"] == pytest.approx((400 + 500 + 50) / 3)
    assert "request_goodput" not in s


def test_goodput_counts_requests_meeting_every_slo():
    fast = result(0.100, 0.300, 3)  # TTFT 100, TPOT 100, E2E 300
    slow_first = result(0.900, 1.000, 3)  # TTFT 900, TPOT 50
    slow_decode = result(0.100, 1.100, 3)  # TPOT 500
    single = result(0.200, 0.200, 1)  # no TPOT: counts as 0
    slos = parse_goodput(["ttft:500", "tpot:150"])
    assert slos == {"ttft": 500.0, "tpot": 150.0}
    assert [meets_slos(r, slos) for r in (fast, slow_first, slow_decode, single)] == [True, False, False, True]
    s = summarize([fast, slow_first, slow_decode, single, RequestResult()], duration=4.0, slos=slos)
    assert s["request_goodput"] == pytest.approx(0.5)
    e2e_only = summarize([fast, slow_first], duration=1.0, slos=parse_goodput(["e2e:500"]))
    assert e2e_only["request_goodput"] == pytest.approx(1.0)


@pytest.mark.parametrize("spec", ["latency:5", "ttft", "ttft:x", "tpot:0", "tpot:-1"])
def test_parse_goodput_rejects(spec):
    with pytest.raises(ValueError):
        parse_goodput([spec])


def test_summarize_without_successes_gives_nan_not_zero():
    s = summarize([RequestResult(error="boom")], duration=1.0)
    assert s["completed"] == 0 and math.isnan(s["mean_ttft_ms"])
    assert "Failed requests:" in format_table(s)


def test_table_has_vllm_labels():
    text = format_table(summarize([result(0.1, 0.3, 3, itl=[0.1, 0.1])], duration=1.0), concurrency=4)
    for label in ("Mean TTFT (ms):", "Median TPOT (ms):", "P99 ITL (ms):", "P90 E2EL (ms):", "concurrency"):
        assert label in text
    assert "P50" not in text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'data: {"choices":[{"delta":{"content":"hi"}}]}', True),
        (b'data: {"choices": [ {"delta": {"content": "hi"}}]}', True),
        # vllm bench serve times these too: a role-only delta, empty text, the finish chunk
        (b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}', True),
        (b'data: {"choices":[{"delta":{"content":""},"finish_reason":"stop"}]}', True),
        (b'data: {"choices":[{"text":"","finish_reason":"length"}]}', True),
        (b'data: {"choices":[{"delta":{"reasoning_content":"x"}}]}', True),
        # ...but not the usage chunk, nor what has no choices
        (b'data: {"choices":[],"usage":{"completion_tokens":3}}', False),
        (b'data: {"choices": [ ], "usage": {"completion_tokens":3}}', False),
        (b'data: {"choices":null}', False),
        (b'data: {"error":{"message":"boom"}}', False),
        (b'data: {"usage":{"completion_tokens":1},"choices":[]}', False),
        (b'data: {"usage":{"x":"\\"choices\\": [1]"}}', False),  # text in a JSON string cannot fake the key
        (b"data: [DONE]", False),
    ],
)
def test_token_event_detection(line, expected):
    assert has_choices(line) is expected


def test_usage_detection():
    assert has_object(b'data: {"choices":[],"usage":{"completion_tokens":3}}', b'"usage"')
    assert has_object(b'data: {"choices":[], "usage": {"completion_tokens":3}}', b'"usage"')
    assert not has_object(b'data: {"choices":[{"delta":{}}],"usage":null}', b'"usage"')
    assert not has_object(b'data: {"choices":[]}', b'"usage"')
