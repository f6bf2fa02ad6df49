"""``make bench-serving``: what the data plane adds on top of its upstream, and what the engine's batching buys.

What it does (all traffic on 127.0.0.1):

1. starts the fixed-rate fake upstream (``serving.bench.fake_upstream``: TTFT 20 ms, a chunk every 5 ms, 64
   tokens), the adapter (``serving.adapter``) in front of it with a throw-away config and API key, and, as a
   yardstick, a bare TCP byte pipe in front of it too (``benchmarks.tcp_pipe``: no HTTP, no inspection,
   the least any Python relay can cost on this machine);
2. runs, in one process and **interleaved** (direct, adapter, pipe, pipe, adapter, direct, ... so machine
   noise falls on all alike), ``ROUNDS`` rounds of each of: a low-concurrency TTFT round (concurrency 4,
   short answers) and a concurrency-64 throughput round, against the upstream directly, through the adapter
   and through the pipe;
3. reads the adapter's (and the pipe's) CPU time (``/proc/<pid>/stat`` utime+stime) around each of its
   concurrency-64 rounds and divides it by the SSE events it relayed;
4. builds the demo model (``serving.demo_model --train-seconds 0``) and measures the engine
   (``serving.engine``) at concurrency 8, two engines (``--batching off`` and ``on``) side by side, rounds
   alternating, with ``ignore_eos`` so that both modes generate exactly ``max_tokens`` per request.

Output (stdout, ``name=value``; progress on stderr):

* ``adapter_added_ttft_p50_ms``, ``adapter_added_ttft_p99_ms``: through-adapter TTFT percentile minus direct
  TTFT percentile at concurrency 4 (target p50 ≤ 0.5);
* ``adapter_throughput_ratio_c64``: through-adapter / direct output tokens per second at concurrency 64
  (target ≥ 0.98);
* ``adapter_cpu_us_per_chunk``: adapter CPU µs per relayed SSE event (target ≤ 20);
* ``engine_batching_speedup_c8``: output tokens/s with batching on / off at concurrency 8 (target ≥ 3);
* ``reference_pipe_added_ttft_p50_ms`` ... ``reference_pipe_cpu_us_per_chunk``: the same four figures for the
  bare byte pipe, the floor against which the adapter's are to be read on the machine that ran them;
* and the raw figures behind them. A part whose component is not installed yet prints ``unavailable``.

Every number is measured on the run that prints it. Exit status: 0 when the benchmark ran (targets are not
asserted: a benchmark, not a test), 1 on any failure (a process that does not start, a failed request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from serving.bench.client import BenchConfig, BenchRun, run_benchmark
from serving.bench.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_ARGS = ["--ttft-ms", "20", "--gap-ms", "5", "--tokens", "64"]
ROUNDS = 6
LOW = {"concurrency": 4, "num_requests": 32, "max_tokens": 8}  # TTFT rounds: short answers, many first tokens
HIGH = {"concurrency": 64, "num_requests": 256, "max_tokens": 64}  # throughput rounds: 4 waves of 64
ENGINE = {"concurrency": 8, "num_requests": 16, "max_tokens": 32, "prompt_len": 16, "ignore_eos": True}
ENGINE_ROUNDS = 4  # per mode, alternating (off on, on off, ...): short rounds, so several
START_TIMEOUT_S = 30.0
ENGINE_START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    """The benchmark could not run as designed; the message says why."""


def log(message: str) -> None:
    print(f"[bench-serving] {message}", file=sys.stderr, flush=True)


def emit(name: str, value) -> None:
    print(f"{name}={value}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat fields 14 and 15."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # the command name may hold spaces; it ends at ')'
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Process:
    """A child server on a local port: output to a log file, shown when it fails; stopped on exit."""

    def __init__(self, name: str, args: list[str], port: int, workdir: Path):
        self.name, self.port = name, port
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        log(f"starting {name}: {' '.join(args)}")
        self.proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def wait_listening(self, timeout: float) -> None:
        """Until the port accepts connections; the process dying or the timeout is a BenchError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not listen on port {self.port} within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def bench(url: str, *, api_key: str | None = None, model: str | None = None, warmup: int = 0, **shape) -> BenchRun:
    config = BenchConfig(url=url, api_key=api_key, model=model, warmup=warmup, timeout_s=REQUEST_TIMEOUT_S, **shape)
    run = asyncio.run(run_benchmark(config))
    failed = [r.error for r in run.results if not r.success]
    if failed:
        raise BenchError(f"{len(failed)} of {len(run.results)} requests to {url} failed, e.g. {failed[0]}")
    return run


def adapter_config(path: Path, api_key: str) -> None:
    config = {
        "task_id": 1,
        "tenant_id": 1,
        "served_model_name": "bench",
        "upstream_model": "bench",
        "system_prompt": "",
        "sampling_policy": "defaults",
        "sampling": {},
        "api_keys": [{"id": 1, "digest": hashlib.sha256(api_key.encode()).hexdigest()}],
        "tokens_per_minute": 1_000_000_000,
        "runtime_image_version": "bench",
        "slo": {"ttft_ms": 2000, "tpot_ms": 100},
        "reflow": {"enabled": False},
        "ingest": None,
    }
    path.write_text(json.dumps(config, indent=2))


def bench_adapter(workdir: Path, rounds: int, stack: contextlib.ExitStack) -> None:
    upstream_port, adapter_port = free_port(), free_port()
    upstream_args = ["-m", "serving.bench.fake_upstream", "--port", str(upstream_port), *UPSTREAM_ARGS]
    upstream = Process("fake_upstream", upstream_args, upstream_port, workdir)
    stack.callback(upstream.stop)
    upstream.wait_listening(START_TIMEOUT_S)
    direct_url = f"http://127.0.0.1:{upstream_port}/v1"
    if not available("serving.adapter.__main__"):
        log("serving.adapter is not available (python -m serving.adapter): skipping the adapter measurements")
        for name in ("ttft_p50_ms", "ttft_p99_ms"):
            emit(f"adapter_added_{name}", "unavailable")
        emit("adapter_throughput_ratio_c64", "unavailable")
        emit("adapter_cpu_us_per_chunk", "unavailable")
        return
    api_key = f"aicp_sk_1_{secrets.token_hex(16)}"
    config_path = workdir / "adapter.json"
    adapter_config(config_path, api_key)
    # The upstream URL has no /v1: the fake upstream serves both /v1/... and /..., whichever the adapter appends.
    adapter_args = ["-m", "serving.adapter", "--config", str(config_path), "--port", str(adapter_port)]
    adapter_args += ["--upstream", f"http://127.0.0.1:{upstream_port}"]
    adapter = Process("adapter", adapter_args, adapter_port, workdir)
    stack.callback(adapter.stop)
    adapter.wait_listening(START_TIMEOUT_S)
    adapter_url = f"http://127.0.0.1:{adapter_port}/v1"
    pipe_port = free_port()
    pipe_args = ["-m", "benchmarks.tcp_pipe", "--port", str(pipe_port), "--upstream-port", str(upstream_port)]
    pipe = Process("tcp_pipe", pipe_args, pipe_port, workdir)
    stack.callback(pipe.stop)
    pipe.wait_listening(START_TIMEOUT_S)
    targets = {
        "direct": {"url": direct_url},
        "adapter": {"url": adapter_url, "api_key": api_key},
        "pipe": {"url": f"http://127.0.0.1:{pipe_port}/v1"},
    }
    pids = {"adapter": adapter.proc.pid, "pipe": pipe.proc.pid}
    for kind, target in targets.items():  # warm-up: connections, imports, first-request caches
        for shape in (LOW, HIGH):
            bench(**target, model="bench", warmup=1, **shape | {"num_requests": shape["concurrency"]})
        log(f"warmed up {kind}")

    ttft: dict[str, list[float]] = {kind: [] for kind in targets}
    tokens = dict.fromkeys(targets, 0)
    seconds = dict.fromkeys(targets, 0.0)
    cpu = dict.fromkeys(pids, 0.0)
    relayed = dict.fromkeys(pids, 0)
    for i in range(rounds):
        order = tuple(targets) if i % 2 == 0 else tuple(reversed(targets))
        for kind in order:
            low = bench(**targets[kind], model="bench", **LOW)
            ttft[kind] += [r.ttft for r in low.results]
        for kind in reversed(order):
            before = cpu_seconds(pids[kind]) if kind in pids else 0.0
            high = bench(**targets[kind], model="bench", **HIGH)
            if kind in pids:
                cpu[kind] += cpu_seconds(pids[kind]) - before
                relayed[kind] += int(high.summary["total_events"])
            tokens[kind] += int(high.summary["total_output_tokens"])
            seconds[kind] += high.duration
        rates = ", ".join(f"{kind} {tokens[kind] / seconds[kind]:.0f}" for kind in tokens)
        log(f"round {i + 1}/{rounds}: output tok/s at c64 so far: {rates}")

    throughput = {kind: tokens[kind] / seconds[kind] for kind in tokens}
    for relay, prefix in (("adapter", "adapter"), ("pipe", "reference_pipe")):
        for p in (50, 99):
            added = percentile(ttft[relay], p) - percentile(ttft["direct"], p)
            emit(f"{prefix}_added_ttft_p{p}_ms", round(added * 1000, 3))
        emit(f"{prefix}_throughput_ratio_c64", round(throughput[relay] / throughput["direct"], 4))
        emit(f"{prefix}_cpu_us_per_chunk", round(cpu[relay] / relayed[relay] * 1e6, 2))
    for kind in targets:
        emit(f"{kind}_ttft_p50_ms_c{LOW['concurrency']}", round(percentile(ttft[kind], 50) * 1000, 3))
        emit(f"{kind}_ttft_p99_ms_c{LOW['concurrency']}", round(percentile(ttft[kind], 99) * 1000, 3))
        emit(f"{kind}_output_tok_s_c64", round(throughput[kind], 1))
    emit("adapter_relayed_events", relayed["adapter"])


def bench_engine(workdir: Path, stack: contextlib.ExitStack) -> None:
    if not (available("serving.engine.__main__") and available("serving.demo_model.__main__")):
        log("serving.engine or serving.demo_model is not available: skipping the engine measurement")
        emit("engine_batching_speedup_c8", "unavailable")
        return
    model_dir = workdir / "demo_model"
    log(f"building the demo model in {model_dir}")
    build_args = [sys.executable, "-m", "serving.demo_model", "--out", str(model_dir), "--train-seconds", "0"]
    build = subprocess.run(build_args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if build.returncode != 0:
        raise BenchError(f"demo model build failed ({build.returncode}):\n{build.stderr[-3000:]}")
    # Both engines run side by side and the rounds alternate (off, on, on, off, ...): an idle engine uses no
    # CPU, and machine noise then falls on both modes alike.
    engines: dict[str, Process] = {}
    for batching in ("off", "on"):
        port = free_port()
        engine_args = ["-m", "serving.engine", "--model", str(model_dir), "--port", str(port), "--batching", batching]
        engines[batching] = Process(f"engine_batching_{batching}", engine_args, port, workdir)
        stack.callback(engines[batching].stop)
    urls = {batching: f"http://127.0.0.1:{engine.port}/v1" for batching, engine in engines.items()}
    for batching, engine in engines.items():
        engine.wait_listening(ENGINE_START_TIMEOUT_S)
        bench(urls[batching], warmup=2, **ENGINE | {"num_requests": ENGINE["concurrency"]})
    tokens = {"off": 0, "on": 0}
    seconds = {"off": 0.0, "on": 0.0}
    for i in range(ENGINE_ROUNDS):
        for batching in ("off", "on") if i % 2 == 0 else ("on", "off"):
            run = bench(urls[batching], **ENGINE)
            tokens[batching] += int(run.summary["total_output_tokens"])
            seconds[batching] += run.duration
    throughput = {batching: tokens[batching] / seconds[batching] for batching in tokens}
    for batching, rate in throughput.items():
        log(f"engine batching {batching}: {rate:.1f} output tok/s at c{ENGINE['concurrency']}")
        emit(f"engine_output_tok_s_c8_batching_{batching}", round(rate, 1))
    emit("engine_batching_speedup_c8", round(throughput["on"] / throughput["off"], 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds per target")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-adapter", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be within 1..100")
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, contextlib.ExitStack() as stack:
            if not args.skip_adapter:
                bench_adapter(Path(tmp), args.rounds, stack)
                stack.close()  # stop the upstream and the adapter before the engine needs the cores
            if not args.skip_engine:
                bench_engine(Path(tmp), stack)
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, aiohttp.ClientError) as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
