"""``python -m serving.engine`` as a real process: the entry point the runtime image uses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import requests

from serving.engine.threads import default_threads


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_engine_cli_serves_the_model(demo_model_dir):
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "serving.engine", "--model", str(demo_model_dir), "--port", str(port)]
    cmd += ["--served-model-name", "cli-demo", "--batching", "off"]  # --threads: the default rule
    cmd += ["--max-request-bytes", "65536"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if requests.get(f"{base}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "engine did not come up"
            time.sleep(0.2)
        assert requests.get(f"{base}/v1/models", timeout=5).json()["data"][0]["id"] == "cli-demo"
        body = {"model": "cli-demo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        reply = requests.post(f"{base}/v1/chat/completions", json=body, timeout=30).json()
        assert reply["usage"]["completion_tokens"] >= 1
        big = {"model": "cli-demo", "messages": [{"role": "user", "content": "x" * 65536}], "max_tokens": 4}
        refused = requests.post(f"{base}/v1/chat/completions", json=big, timeout=30)
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "request_too_large"
        assert "limit of 65536 bytes (0.0625 MiB)" in refused.json()["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert f"torch intra-op threads: {default_threads()}" in proc.stdout.read()
