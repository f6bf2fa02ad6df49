"""Rough adapter CPU per streamed chunk: ``.venv/bin/python -m tests.serving.adapter.bench_chunk_cpu``.

Runs the adapter as a subprocess in front of a fast fake engine (in this process), streams many chunks through
it, and divides the adapter process's CPU time (utime + stime from /proc) by the number of chunks. The
engine pauses briefly between chunks so that each SSE event arrives as its own socket read (the adapter's
worst case); the number of reads it really did is taken from its ITL histogram. Not a test: not collected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.serving.adapter.fakes import FakeEngine, ServerThread, free_port

ROOT = Path(__file__).resolve().parents[3]
KEY = "aicp_sk_1_" + "b" * 43


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def drive(url: str, requests: int, concurrency: int, stream: bool) -> int:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream, "max_tokens": 1}
    sem = asyncio.Semaphore(concurrency)
    received = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:

        async def one():
            nonlocal received
            async with sem, session.post(url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
                async for data in resp.content.iter_any():
                    received += len(data)

        await asyncio.gather(*(one() for _ in range(requests)))
    return received


async def ttft_p50(url: str, n: int) -> float:
    """Median time to the first content byte over ``n`` sequential streamed requests, in ms."""
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    samples = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        for _ in range(n):
            t0 = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                first = None
                async for data in resp.content.iter_any():
                    if first is None and b" tok0" in data:
                        first = time.perf_counter() - t0
            samples.append(first)
    return sorted(samples)[n // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--gap-ms", type=float, default=1.0, help="engine pause between chunks")
    parser.add_argument("--rename", action="store_true", help="served name differs from the engine's (bytes rewrite)")
    args = parser.parse_args()

    engine = FakeEngine(model="engine-model" if args.rename else "chat")
    engine.tokens = [f" tok{i}" for i in range(args.tokens)]
    engine.delay = args.gap_ms / 1000
    upstream = ServerThread(engine.app).start()
    import hashlib

    config = {"task_id": 1, "tenant_id": 1, "served_model_name": "chat", "upstream_model": engine.model,
              "system_prompt": "sys", "sampling": {"temperature": 0.5},
              "api_keys": [{"id": 1, "digest": hashlib.sha256(KEY.encode()).hexdigest()}]}  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    port = free_port()
    adapter = os.environ.get("ADAPTER_CMD", "-m serving.adapter").split()  # e.g. a profiling wrapper script
    cmd = [sys.executable, *adapter, "--config", f.name, "--upstream", upstream.url,
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        time.sleep(1.5)
        asyncio.run(drive(url, 8, 8, True))  # warm up connections and code paths
        before = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        asyncio.run(drive(url, args.requests, args.concurrency, True))
        wall = time.perf_counter() - t0
        after = cpu_seconds(proc.pid)
        user, system = after[0] - before[0], after[1] - before[1]
        used = user + system
        metrics = asyncio.run(_get(url + "/metrics"))
        reads = _metric(metrics, "aicp_adapter_itl_seconds_count") + _metric(metrics, "aicp_adapter_ttft_seconds_count")
        events = args.requests * (args.tokens + 4)
        print(f"requests={args.requests} tokens/request={args.tokens} concurrency={args.concurrency} wall={wall:.2f}s")
        print(
            f"adapter CPU {used:.3f}s; SSE events {events}; upstream reads with content ≈ {reads:.0f} (incl. warm-up)"
        )
        print(f"CPU per SSE event: {used / events * 1e6:.1f} µs (user {user / events * 1e6:.1f} µs + kernel "
              f"{system / events * 1e6:.1f} µs); per upstream read: {used / max(reads, 1) * 1e6:.1f} µs")  # fmt: skip
        if not args.rename:  # the engine serves "chat" itself, so it can be called directly too
            engine.delay, engine.tokens = 0.0, engine.tokens[:4]
            direct = min(asyncio.run(ttft_p50(upstream.url, 200)) for _ in range(3))
            proxied = min(asyncio.run(ttft_p50(url, 200)) for _ in range(3))
            print(f"TTFT p50 direct {direct:.3f} ms, through the adapter {proxied:.3f} ms: +{proxied - direct:.3f} ms")
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.stop()
        os.unlink(f.name)


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.text()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


if __name__ == "__main__":
    main()
