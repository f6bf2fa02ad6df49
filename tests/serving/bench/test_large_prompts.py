"""The large-prompt part of ``make bench-serving`` (``benchmarks/serving_large.py``): its prompts, the fake
upstream's body counting and fake ingest, and the whole part end to end at tiny sizes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math

import aiohttp

from benchmarks.serving_large import (
    PII_MARKERS,
    LargeShape,
    bench_large_prompts,
    chinese_prose,
    descendants,
    dropped_captures,
    english_prose,
)
from serving.bench.client import BenchConfig, build_payload
from serving.bench.fake_upstream import Timing, running_upstream

MARKERS = ("someone@example.com", "11010519491231002X")


def test_prompts_have_their_exact_size_and_the_personal_data():
    for size in (4096, 220 * 1024):
        text = english_prose(size)
        assert len(text.encode()) == size and text.isascii()
        assert all(marker in text for marker in PII_MARKERS)
    assert english_prose(5000, seed=1) == english_prose(5000, seed=1) != english_prose(5000, seed=2)
    zh = chinese_prose(10_001)
    assert len(zh.encode()) == 10_001
    assert "11010519491231002X" in zh and "13812345678" in zh and "li.wei@example.com" in zh
    assert sum(1 for ch in zh if "\u4e00" <= ch <= "\u9fff") > 3000  # Chinese prose, not padding


def test_bench_client_sends_a_given_prompt_verbatim_as_utf8():
    config = BenchConfig(url="u", concurrency=1, num_requests=1, prompt_text='你好，世界 "quoted"')
    payload = build_payload(config, "m")
    assert "你好，世界".encode() in payload  # UTF-8, not \\u escapes
    assert json.loads(payload)["messages"] == [{"role": "user", "content": '你好，世界 "quoted"'}]
    synthetic = BenchConfig(url="u", concurrency=1, num_requests=1, prompt_len=3)
    assert json.loads(build_payload(synthetic, "m"))["messages"][0]["content"] == "word0 word1 word2"


def test_fake_upstream_counts_bodies_and_takes_ingest_batches():
    reflow = [
        {"id": "a", "messages": [{"role": "user", "content": "mail [EMAIL], id [ID]"}]},
        {"id": "b", "messages": [{"role": "user", "content": "mail someone@example.com"}], "output": "x"},
    ]

    async def go():
        async with running_upstream(Timing(ttft_ms=1, gap_ms=0, tokens=2), pii_markers=MARKERS) as url:
            base = url[:-3]
            auth = {"Authorization": "Bearer anything"}
            async with aiohttp.ClientSession() as session:

                async def call(method, path, **kwargs):
                    async with session.request(method, base + path, **kwargs) as resp:
                        return resp.status, await resp.json(content_type=None)

                body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 300_000}]})
                assert (await call("POST", "/v1/chat/completions", data=body))[0] == 200
                mangled = body[:-5].encode()
                status, answer = await call("POST", "/v1/chat/completions", data=mangled)
                assert status == 400 and "JSON" in answer["error"]["message"]
                stats = (await call("GET", "/stats"))[1]
                assert stats == {"requests": 2, "body_bytes": 2 * len(body) - 5, "last_body_bytes": len(body) - 5}
                assert (await call("POST", "/stats/reset"))[1]["requests"] == 0

                batch = {"task_id": 1, "records": reflow}
                assert (await call("POST", "/ingest/reflow/", json=batch))[0] == 401  # no ingest token
                for _ in range(2):  # delivered twice: at least once
                    assert (await call("POST", "/ingest/reflow/", json=batch, headers=auth))[0] == 200
                metrics = {"task_id": 1, "records": [{"id": "m1"}, {"id": "m2"}, {"id": "m3"}]}
                assert (await call("POST", "/ingest/metrics/", json=metrics, headers=auth))[0] == 200
                load = {"task_id": 1, "records": [{"instance": "i"}]}
                assert (await call("POST", "/ingest/engine-load/", json=load, headers=auth))[0] == 200
                assert (await call("POST", "/ingest/reflow/", data=b"{not json", headers=auth))[0] == 200
                got = (await call("GET", "/ingest/stats"))[1]
                assert got == {
                    "reflow_records": 2,
                    "reflow_deliveries": 4,
                    "reflow_unredacted": 1,  # b still holds an address
                    "metrics_records": 3,
                    "engine_load_records": 1,
                    "reflow_bytes": 2 * len(json.dumps(batch)) + len(b"{not json"),
                    "malformed_batches": 1,
                }
                assert (await call("POST", "/ingest/stats/reset"))[1]["reflow_records"] == 0

    asyncio.run(go())


def test_dropped_captures_reads_the_reflow_counters_only():
    text = "\n".join([
        "# HELP aicp_adapter_spool_dropped_total Records dropped on a full spool queue",
        'aicp_adapter_spool_dropped_total{spool="metrics"} 7.0',
        'aicp_adapter_spool_dropped_total{spool="reflow"} 2.0',
        'aicp_adapter_spool_dropped_created{spool="reflow"} 1.7e9',
        'aicp_adapter_reflow_dropped_total{reason="memory"} 3.0',
        'aicp_adapter_reflow_dropped_created{reason="memory"} 1.7e9',
        "aicp_adapter_requests_total 100.0",
    ])  # fmt: skip
    assert dropped_captures(text) == 5.0
    assert descendants(2**22 + 12345) == []  # no such process: no children, no error


def test_the_part_end_to_end_at_tiny_sizes(tmp_path, capsys):
    shape = LargeShape(small_bytes=16 * 1024, large_bytes=48 * 1024, zh_bytes=8 * 1024, concurrency=2,
                       rounds_small=1, requests_small=4, rounds_large_c1=2, requests_large_c1=2,
                       rounds_large_c16=1, requests_large_c16=4, ingest_timeout_s=30)  # fmt: skip
    with contextlib.ExitStack() as stack:
        bench_large_prompts(tmp_path, stack, shape)
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    numeric = [
        "capture_added_ttft_p99_ms_220k_c16", "capture_added_ttft_p50_ms_220k_c16",
        "capture_off_added_ttft_p99_ms_220k_c16", "adapter_added_ttft_p99_ms_1m_c1",
        "adapter_added_ttft_p50_ms_1m_c1", "adapter_peak_rss_mib_1m_c16", "upstream_bytes_ratio_zh",
        "capture_records_expected", "capture_records_received", "capture_records_duplicated",
        "capture_records_unredacted", "capture_dropped", "direct_ttft_p99_ms_220k_c16",
        "capture_on_ttft_p50_ms_1m_c1", "capture_on_ttft_p99_ms_1m_c16",
    ]  # fmt: skip
    for name in numeric:
        assert math.isfinite(float(lines[name])), (name, lines.get(name))
    worker = lines["capture_worker_peak_rss_mib_1m_c16"]
    assert worker == "none" or float(worker) > 0
    # warm-ups (1 + 2 at 16 KiB, 2 at 48 KiB) + a (4) + b (2 × 2) + c (4) + the two byte-ratio requests
    assert int(lines["capture_records_expected"]) == 19
    assert lines["capture_records_received"] == lines["capture_records_expected"]
    assert lines["capture_records_duplicated"] == lines["capture_records_unredacted"] == "0"
    assert float(lines["adapter_peak_rss_mib_1m_c16"]) > 10
    assert 0.99 < float(lines["upstream_bytes_ratio_220k"]) < 1.1
