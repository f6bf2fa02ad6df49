"""Reflow capture and at-least-once shipping, across an ingest outage and a killed adapter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.serving.adapter.conftest import KEY, make_config
from tests.serving.adapter.fakes import FakeIngest, ServerThread, free_port

HEADERS = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[3]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def reflow_config(spool: Path, ingest_port: int, **reflow) -> dict:
    return make_config(
        reflow={"enabled": True, "sample_rate": 1.0, "redact": True, "spool_dir": str(spool), **reflow},
        ingest={"url": f"http://127.0.0.1:{ingest_port}/api/v1/ingest/", "token": "ingest-token",
                "batch_size": 3, "interval_s": 0.05, "max_backoff_s": 0.2},
    )  # fmt: skip


def spooled_lines(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in directory.glob("*.jsonl"))


def call(url: str, i: int) -> str:
    """One request (even: streaming chat, odd: completions); returns the adapter's record id."""
    if i % 2 == 0:
        body = {"model": "chat", "messages": [{"role": "user", "content": f"question {i}"}], "stream": True}
        resp = requests.post(url + "/v1/chat/completions", json=body, headers=HEADERS)
    else:
        resp = requests.post(url + "/v1/completions", json={"prompt": f"prompt {i}"}, headers=HEADERS)
    assert resp.status_code == 200, resp.text
    return resp.headers["X-Request-Id"]


def test_records_captured_with_injection_parameters_output_and_redaction(start_adapter, engine, tmp_path):
    ingest = FakeIngest("ingest-token")
    server = ServerThread(ingest.app).start()
    try:
        overrides = reflow_config(tmp_path, server.port)
        url = start_adapter(reflow=overrides["reflow"], ingest=overrides["ingest"])
        engine.tokens = ["Mail ", "me at bob@example.com", " or call 13812345678"]
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "my id is 11010519491231002X"}],
            "stream": True,
        }
        requests.post(url + "/v1/chat/completions", json=body, headers=HEADERS).raise_for_status()
        request_id = call(url, 1)
        wait_for(lambda: len(ingest.ids("reflow")) == 2, what="two reflow records")
        wait_for(lambda: len(ingest.ids("metrics")) == 2, what="two metric records")
    finally:
        server.stop()
    chat, completion = sorted(ingest.received["reflow"], key=lambda r: r["endpoint"])
    assert chat["messages"] == [
        {"role": "system", "content": "You are the task's assistant."},
        {"role": "user", "content": "my id is [ID]"},
    ]
    assert chat["output"] == "Mail me at [EMAIL] or call [PHONE]"
    assert chat["parameters"] == {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}
    assert (chat["task_id"], chat["tenant_id"], chat["api_key_id"], chat["output_tokens"]) == (7, 3, 12, 3)
    assert chat["ttft_ms"] > 0 and chat["runtime_image_version"] == "1.2.0" and chat["started_at"].endswith("Z")
    assert completion["id"] == request_id and completion["messages"] == "prompt 1"
    metric = next(m for m in ingest.received["metrics"] if m["id"] == request_id)
    assert metric["stream"] is False and metric["status"] == 200 and metric["output_tokens"] == 3


def test_sample_rate_zero_captures_nothing_but_metrics_still_ship(start_adapter, tmp_path):
    ingest = FakeIngest("ingest-token")
    server = ServerThread(ingest.app).start()
    try:
        overrides = reflow_config(tmp_path, server.port, sample_rate=0.0)
        url = start_adapter(reflow=overrides["reflow"], ingest=overrides["ingest"])
        ids = {call(url, i) for i in range(4)}
        wait_for(lambda: ingest.ids("metrics") == ids, what="metric records")
        assert ingest.received["reflow"] == []
    finally:
        server.stop()


class AdapterProcess:
    def __init__(self, config_path: Path, upstream: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "serving.adapter", "--config", str(config_path), "--upstream", upstream,
               "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "WARNING"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def wait_ready(self):
        def ready():
            assert self.proc.poll() is None, "adapter exited"
            try:
                return requests.get(self.url + "/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout=20, what="the adapter to start")
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_every_record_arrives_after_an_ingest_outage_and_a_killed_adapter(engine, tmp_path):
    ingest_port = free_port()  # nothing listens there yet: the ingest endpoint is down
    config_path = tmp_path / "adapter.json"
    config_path.write_text(json.dumps(reflow_config(tmp_path / "spool", ingest_port)))
    reflow_dir, metrics_dir = tmp_path / "spool" / "reflow", tmp_path / "spool" / "metrics"

    first = AdapterProcess(config_path, engine.url).wait_ready()
    try:
        ids = {call(first.url, i) for i in range(7)}
        wait_for(lambda: spooled_lines(reflow_dir) == 7 and spooled_lines(metrics_dir) == 7, what="spooling")
    finally:
        first.kill()

    second = AdapterProcess(config_path, engine.url).wait_ready()
    ingest = FakeIngest("ingest-token")
    server = None
    try:
        ids |= {call(second.url, i) for i in range(7, 12)}
        assert len(ids) == 12
        time.sleep(0.3)  # the shippers are retrying against the dead endpoint meanwhile
        server = ServerThread(ingest.app, port=ingest_port).start()
        wait_for(lambda: ingest.ids("reflow") == ids and ingest.ids("metrics") == ids, what="all records")
        # Fully shipped segments of the killed process are deleted; only the live one may remain.
        wait_for(lambda: len(list(reflow_dir.glob("*.jsonl"))) <= 1, what="shipped segments to be deleted")
    finally:
        second.kill()
        if server:
            server.stop()
    received = [r["id"] for r in ingest.received["reflow"]]
    assert set(received) == ids  # nothing lost; duplicates (at least once) would be removed by id
    assert all(r["output"] for r in ingest.received["reflow"])


def test_sigterm_drains_the_queue_and_exits_cleanly(engine, tmp_path):
    config_path = tmp_path / "adapter.json"
    config_path.write_text(json.dumps(reflow_config(tmp_path / "spool", free_port())))
    adapter = AdapterProcess(config_path, engine.url).wait_ready()
    for i in range(6):
        call(adapter.url, i)
    adapter.proc.send_signal(signal.SIGTERM)
    assert adapter.proc.wait(15) == 0
    assert spooled_lines(tmp_path / "spool" / "reflow") == 6
    assert spooled_lines(tmp_path / "spool" / "metrics") == 6
