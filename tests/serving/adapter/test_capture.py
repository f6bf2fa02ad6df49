"""Reflow capture off the relay (capture.py, capture_worker.py): records are built and redacted in a worker
process, every captured exchange arrives once under load, the bounds hold, and what capture drops is counted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from serving.adapter.capture import Capture
from tests.serving.adapter.conftest import KEY
from tests.serving.adapter.fakes import FakeIngest, ServerThread, free_port
from tests.serving.adapter.test_reflow import ROOT, reflow_config, wait_for

HEADERS = {"Authorization": f"Bearer {KEY}"}
PII = {"13812345678": "[PHONE]", "zhang.san@example.com": "[EMAIL]", "11010519491231002X": "[ID]"}


def long_prompt(size: int, chinese: bool) -> str:
    """About ``size`` bytes of UTF-8 prose with the PII above in the middle, as a long RAG prompt might hold it."""
    filler = "数据回流把请求与响应留作下一轮训练。" if chinese else "The context retrieved for this question follows. "
    pii = "联系电话13812345678，邮箱zhang.san@example.com，身份证号11010519491231002X。"
    half = filler * (size // 2 // len(filler.encode()))
    return half + pii + half


@pytest.fixture
def ingest():
    fake = FakeIngest("ingest-token")
    server = ServerThread(fake.app).start()
    fake.port = server.port
    yield fake
    server.stop()


def test_long_prompts_in_two_languages_arrive_once_each_and_redacted_under_concurrency(start_adapter, ingest, tmp_path):
    overrides = reflow_config(tmp_path, ingest.port)
    url = start_adapter(reflow=overrides["reflow"], ingest=overrides["ingest"])
    prompts = [long_prompt(256 << 10, chinese=i % 2 == 0) for i in range(24)]

    def call(prompt: str) -> str:
        body = {"model": "chat", "messages": [{"role": "user", "content": prompt}], "stream": True}
        resp = requests.post(url + "/v1/chat/completions", json=body, headers=HEADERS, timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.headers["X-Request-Id"]

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(call, prompts))
    assert len(ids) == 24
    wait_for(lambda: ingest.ids("reflow") == ids, timeout=60, what="every reflow record")
    received = ingest.received["reflow"]
    assert sorted(r["id"] for r in received) == sorted(ids)  # once each: no loss, and no resend without a crash
    for record in received:
        content = record["messages"][-1]["content"]
        assert not [secret for secret in PII if secret in content], "personal data left the pod"
        assert all(placeholder in content for placeholder in PII.values())
        assert len(content) > 80_000  # the whole prompt, not a truncated one
    metrics = requests.get(url + "/metrics").text
    dropped = [line for line in metrics.splitlines() if line.startswith("aicp_adapter_reflow_dropped_total{")]
    assert len(dropped) == 3 and all(line.endswith(" 0.0") for line in dropped), dropped
    wait_for(lambda: "aicp_adapter_reflow_built_total 24.0" in requests.get(url + "/metrics").text,
             what="the worker's count of built records")  # fmt: skip


def worker_settings(tmp_path, ingest_port: int) -> dict:
    ingest = reflow_config(tmp_path, ingest_port)["ingest"]
    return {"spool_dir": str(tmp_path), "redact": True, "task_id": 7, "ingest": ingest}


def exchange(i: int, size: int = 1000) -> tuple[dict, bytes, list[bytes]]:
    now = time.time()
    meta = {"id": f"{i:032x}", "task_id": 7, "tenant_id": 3, "api_key_id": 12, "endpoint": "completions",
            "chat": False, "stream": False, "input_tokens": 1, "output_tokens": 1, "ttft_ms": None, "tpot_ms": None,
            "status": 200, "runtime_image_version": "", "started_at": now, "finished_at": now}  # fmt: skip
    body = json.dumps({"model": "m", "prompt": "call 13812345678 " + "x" * size}).encode()
    answer = json.dumps({"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}).encode()
    return meta, body, [answer]


def test_a_stalled_worker_makes_capture_drop_past_its_backlog_bound_and_count_it_then_catch_up(ingest, tmp_path):
    drops = []
    capture = Capture(tmp_path, worker_settings(tmp_path, ingest.port), max_backlog_bytes=250_000,
                      on_drop=drops.append)  # fmt: skip
    try:
        wait_for(lambda: capture.worker.proc.pid, what="the worker")
        os.kill(capture.worker.proc.pid, signal.SIGSTOP)  # the worker falls behind: it builds nothing
        sent = {exchange(i)[0]["id"] for i in range(10)}
        for i in range(10):
            assert capture.put(*exchange(i, size=50_000))  # the request path is never refused or blocked
        wait_for(lambda: capture.pending_bytes == 0, what="the writer thread")
        assert drops and set(drops) == {"backlog"} and capture.dropped["backlog"] == len(drops)
        assert capture.backlog <= 250_000  # what waits on disk stays within its bound
        os.kill(capture.worker.proc.pid, signal.SIGCONT)
        kept = 10 - len(drops)
        wait_for(lambda: len(ingest.ids("reflow")) == kept, timeout=30, what="the records capture kept")
        assert ingest.ids("reflow") <= sent
        assert all("[PHONE]" in r["messages"] and "13812345678" not in r["messages"] for r in ingest.received["reflow"])
    finally:
        if capture.worker.proc.poll() is None:
            os.kill(capture.worker.proc.pid, signal.SIGCONT)
        capture.close()


def test_exchanges_over_the_memory_bound_are_dropped_at_once_and_counted(ingest, tmp_path):
    drops = []
    capture = Capture(tmp_path, worker_settings(tmp_path, ingest.port), max_pending_bytes=20_000,
                      on_drop=drops.append)  # fmt: skip
    try:
        assert not capture.put(*exchange(1, size=30_000))
        assert drops == ["memory"] and capture.dropped["memory"] == 1
        assert capture.put(*exchange(2, size=100))
        wait_for(lambda: ingest.ids("reflow") == {exchange(2)[0]["id"]}, what="the small record")
    finally:
        capture.close()


def test_a_killed_worker_is_started_again_and_goes_on_where_it_stopped(ingest, tmp_path):
    capture = Capture(tmp_path, worker_settings(tmp_path, ingest.port))
    try:
        for i in range(5):
            capture.put(*exchange(i))
        wait_for(lambda: len(ingest.ids("reflow")) == 5, what="the first records")
        first = capture.worker.proc
        first.kill()
        wait_for(lambda: capture.worker.starts == 2 and capture.worker.proc.poll() is None, what="a new worker")
        for i in range(5, 12):
            capture.put(*exchange(i))
        wait_for(lambda: ingest.ids("reflow") == {exchange(i)[0]["id"] for i in range(12)}, what="every record")
    finally:
        capture.close()
    assert capture.worker.proc.returncode == 0  # asked to stop, it finished and exited cleanly


def test_a_capture_the_worker_cannot_build_is_skipped_and_the_rest_arrive(ingest, tmp_path):
    capture = Capture(tmp_path, worker_settings(tmp_path, ingest.port))
    try:
        meta, _body, answer = exchange(1)
        capture.put(meta, b"{not json", answer)  # the adapter never parses what it captures: the worker does
        capture.put(*exchange(2))
        wait_for(lambda: ingest.ids("reflow") == {exchange(2)[0]["id"]}, what="the good record")
    finally:
        capture.close()
    assert not list((tmp_path / "capture").glob("*.frames"))  # built (or skipped) and cleaned up at the end


def test_sigterm_to_the_adapters_process_group_still_builds_every_capture_before_exit(engine, tmp_path):
    """The local orchestrator and a container runtime signal the whole group: the worker waits for the adapter."""
    config_path = tmp_path / "adapter.json"
    config_path.write_text(json.dumps(reflow_config(tmp_path / "spool", 9)))  # ingest down: records stay spooled
    port = free_port()
    cmd = [sys.executable, "-m", "serving.adapter", "--config", str(config_path), "--upstream", engine.url,
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        wait_for(lambda: _healthy(port), timeout=20, what="the adapter to start")
        for i in range(4):
            body = {"model": "chat", "prompt": f"call 13812345678 about order {i}"}
            assert requests.post(f"http://127.0.0.1:{port}/v1/completions", json=body, headers=HEADERS).ok
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    spooled = (tmp_path / "spool" / "reflow").glob("*.jsonl")
    lines = [json.loads(line) for path in spooled for line in path.read_text().splitlines()]
    assert len(lines) == 4 and all("[PHONE]" in r["messages"] for r in lines)
    assert not list((tmp_path / "spool" / "capture").glob("*.frames"))  # all built, nothing left behind


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
    except requests.ConnectionError:
        return False
