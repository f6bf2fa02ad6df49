"""The metric record: the ITL histogram's bin contract, and records shipped by a running adapter."""

from __future__ import annotations

import math
import time

import pytest
import requests

from serving.adapter.config import parse_config
from serving.adapter.metrics import ITL_HIST_GAMMA, itl_bin, itl_bin_value, itl_histogram, metric_record
from serving.adapter.proxy import Adapter, Exchange
from tests.serving.adapter.conftest import KEY, make_config
from tests.serving.adapter.fakes import FakeIngest, ServerThread
from tests.serving.adapter.test_reflow import wait_for

HEADERS = {"Authorization": f"Bearer {KEY}"}
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)


def contract_bin(ms: float) -> int:
    """The bin formula as the control plane states it, written out independently of the adapter's code."""
    return math.ceil(math.log(max(ms, 0.001)) / math.log(GAMMA))


VALUES_MS = [1e-9, 0.0001, 0.0009, 0.001, 0.0011, 0.05, 0.5, 0.999, 1.0, 1.005, 1.03, 2.5, 7.0, 12.0, 12.5,
             33.3, 100.0, 999.0, 1234.5, 60_000.0]  # fmt: skip


def test_the_bin_constants_are_the_contract():
    assert ITL_HIST_GAMMA == GAMMA


@pytest.mark.parametrize("ms", VALUES_MS)
def test_a_value_lands_in_the_bin_of_the_formula_and_reads_back_within_one_percent(ms):
    index = itl_bin(ms)
    assert index == contract_bin(ms)
    clamped = max(ms, 0.001)
    assert GAMMA ** (index - 1) < clamped * (1 + 1e-12) and clamped <= GAMMA**index * (1 + 1e-12)
    assert abs(itl_bin_value(index) - clamped) <= ALPHA * clamped * (1 + 1e-9)


def test_tiny_values_are_clamped_to_the_bin_of_a_microsecond():
    floor = itl_bin(0.001)
    assert floor == -345  # ceil(log(0.001) / log(GAMMA)) = ceil(-345.38)
    assert itl_bin(0.0) == itl_bin(1e-12) == itl_bin(0.0005) == floor
    assert itl_bin(0.00102) == floor + 1  # just above the floor's bin: not clamped


# Exponents whose boundary GAMMA**i is represented exactly enough for the formula to put it in bin i (for others
# float rounding of GAMMA**i or of the logarithm can tip it one bin over, on the control plane's side alike).
@pytest.mark.parametrize("i", [-300, -50, 0, 1, 2, 3, 10, 100, 115, 200, 345, 460])
def test_bin_boundaries_belong_to_the_lower_bin(i):
    boundary = GAMMA**i
    assert itl_bin(boundary) == i
    assert itl_bin(boundary * (1 - 1e-9)) == i
    assert itl_bin(boundary * (1 + 1e-9)) == i + 1
    assert itl_bin(GAMMA ** (i - 0.5)) == i  # clearly inside the bin
    for value in (boundary, boundary * (1 + 1e-9), GAMMA ** (i - 0.5)):
        assert abs(itl_bin_value(itl_bin(value)) - value) <= ALPHA * value * (1 + 1e-9)


def test_a_request_histogram_is_sparse_string_keyed_and_counts_every_gap():
    gaps_s = [0.012, 0.012, 0.0125, 0.040, 0.0, 0.0000001, 0.5]
    hist = itl_histogram(gaps_s)
    expected: dict[str, int] = {}
    for gap in gaps_s:
        key = str(contract_bin(gap * 1000))
        expected[key] = expected.get(key, 0) + 1
    assert hist == expected
    assert hist[str(contract_bin(12.0))] == 2 and hist["-345"] == 2  # 0 and 0.1 µs are clamped to the floor
    assert sum(hist.values()) == len(gaps_s)
    assert itl_histogram([]) is None and itl_histogram(None) is None


def test_the_transform_replaces_the_raw_gaps_with_the_itl_fields():
    record = metric_record({"id": "a", "stream": True, "gaps": [0.010, 0.030, 0.020]})
    assert "gaps" not in record
    assert (record["itl_p50_ms"], record["itl_max_ms"]) == (20.0, 30.0)
    assert record["itl_hist"] == {str(contract_bin(v)): 1 for v in (10.0, 20.0, 30.0)}
    unary = metric_record({"id": "b", "stream": False, "gaps": None})
    assert (unary["itl_p50_ms"], unary["itl_max_ms"], unary["itl_hist"]) == (None, None, None)


def ingest_config(port: int) -> dict:
    return {"url": f"http://127.0.0.1:{port}/api/v1/ingest/", "token": "ingest-token",
            "batch_size": 10, "interval_s": 0.05, "max_backoff_s": 0.2}  # fmt: skip


def test_a_streamed_request_ships_its_itl_histogram(start_adapter, engine, tmp_path):
    ingest = FakeIngest("ingest-token")
    server = ServerThread(ingest.app).start()
    engine.first_delay = engine.delay = 0.02  # 20 ms after each token: a gap per token after the first
    try:
        url = start_adapter(reflow={"spool_dir": str(tmp_path)}, ingest=ingest_config(server.port))
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        streamed = requests.post(url + "/v1/chat/completions", json=body, headers=HEADERS)
        unary = requests.post(url + "/v1/chat/completions", json={**body, "stream": False}, headers=HEADERS)
        ids = {streamed.headers["X-Request-Id"], unary.headers["X-Request-Id"]}
        wait_for(lambda: ingest.ids("metrics") == ids, what="two metric records")
    finally:
        server.stop()
    records = {r["id"]: r for r in ingest.received["metrics"]}
    record = records[streamed.headers["X-Request-Id"]]
    assert "gaps" not in record
    hist = record["itl_hist"]
    assert all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in hist.items())
    assert record["chunks"] >= len(engine.tokens)
    assert sum(hist.values()) == record["chunks"] - 1  # one gap between consecutive content chunks
    top = max(int(k) for k in hist)
    assert record["itl_max_ms"] >= 20
    assert abs(itl_bin_value(top) - record["itl_max_ms"]) <= 0.011 * record["itl_max_ms"]  # rounded to 1 µs
    assert record["itl_p50_ms"] >= 20
    other = records[unary.headers["X-Request-Id"]]
    assert other["stream"] is False and other["itl_hist"] is None and other["itl_p50_ms"] is None


def test_records_the_control_plane_refuses_are_counted_and_not_resent(start_adapter, tmp_path):
    ingest = FakeIngest("ingest-token")
    ingest.reject = lambda kind, record: None if record["stream"] else {"ttft_ms": ["This field may not be null."]}
    server = ServerThread(ingest.app).start()
    try:
        url = start_adapter(reflow={"spool_dir": str(tmp_path)}, ingest=ingest_config(server.port))
        unary = requests.post(url + "/v1/completions", json={"prompt": "x"}, headers=HEADERS)
        body = {"prompt": "x", "stream": True}
        streamed = requests.post(url + "/v1/completions", json=body, headers=HEADERS)
        refused_id, stored_id = unary.headers["X-Request-Id"], streamed.headers["X-Request-Id"]
        wait_for(lambda: ingest.ids("metrics") == {stored_id}, what="the valid record")
        wait_for(lambda: any(refused_id in ids for ids in ingest.posts["metrics"]), what="the refused record")
        time.sleep(0.5)  # more than the retry delay (max_backoff_s 0.2): a re-sent batch would show by now
        metrics = requests.get(url + "/metrics").text
    finally:
        server.stop()
    assert sum(ids.count(refused_id) for ids in ingest.posts["metrics"]) == 1
    assert sum(ids.count(stored_id) for ids in ingest.posts["metrics"]) == 1
    assert 'aicp_adapter_ingest_rejected_total{spool="metrics"} 1.0' in metrics


class Queued:
    """Stands in for a spool or the reflow capture: keeps what the request path queues."""

    def __init__(self):
        self.items: list = []

    def put(self, *item) -> None:
        self.items.append(item[0] if len(item) == 1 else item)


def test_the_request_path_queues_raw_gaps_that_later_appends_cannot_change(tmp_path):
    config = make_config(reflow={"enabled": True, "spool_dir": str(tmp_path)},
                         ingest={"url": "http://127.0.0.1:9/", "token": "t"})  # fmt: skip
    adapter = Adapter(parse_config(config), "http://127.0.0.1:9")
    adapter.metrics_spool, adapter.capture = Queued(), Queued()
    ex = Exchange(t0=time.perf_counter(), started_at=time.time(), key_id=12, chat=True, stream=True, ttft=0.01,
                  e2e=0.05, gaps=[0.01, 0.02], chunks=3, capture=True, sent=b'{"messages":[]}',
                  raw=[b"data: {}\n\n"])  # fmt: skip
    adapter._finish(ex)
    ex.gaps.append(9.0)  # what a stream inspector still fed after the end would do
    ex.raw.append(b"data: late\n\n")
    (metric,), ((_meta, sent, response),) = adapter.metrics_spool.items, adapter.capture.items
    assert metric["gaps"] == [0.01, 0.02] and response == [b"data: {}\n\n"] and sent == b'{"messages":[]}'
    assert not {"itl_p50_ms", "itl_max_ms", "itl_hist"} & set(metric)  # computed by the writer, not here
    assert metric_record(metric)["itl_hist"] == {str(contract_bin(10.0)): 1, str(contract_bin(20.0)): 1}
