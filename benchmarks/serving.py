"""``make bench-serving``: what the data plane adds on top of its upstream, what batching buys, how vLLM compares.

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
   alternating, with ``ignore_eos`` so that both modes generate exactly ``max_tokens`` per request;
5. against the same demo model, starts one vLLM (``.venv-vllm``: ``python -m serving.vllm_cpu serve``, as the
   suite starts it, stopped at the end with its whole process group), our engine beside it (batching on,
   default threads), the adapter in front of vLLM (a throw-away config and key, as in 1.) and one
   ``vllm bench serve`` kept loaded (``benchmarks/vllm_bench_runner.py``: vLLM's own client, unchanged, minus
   its 25-50 s start-up per run). Then ``VLLM_ROUNDS`` interleaved rounds (the order reverses every round) of
   the same load against four targets: ``serving.bench`` to vLLM, ``serving.bench`` through the adapter to
   vLLM, ``serving.bench`` to our engine, and ``vllm bench serve`` to our engine. The load: streamed chat
   completions, 32 requests per round at concurrency 8, 32 prompt tokens of message content (vLLM's random
   dataset; ``serving.bench`` sends the word count that tokenizes to 32 on average), 64 tokens out with
   ``ignore_eos``. ``benchmarks/serving_vllm.py`` says how.
6. right after steps 1–3 (the adapter part), the large-prompt part (``benchmarks/serving_large.py``, whose
   docstring says what it starts and runs): prompts of 220 KiB and 1 MiB (and ~200 KiB of Chinese) straight to
   a fake upstream and through two adapters that rewrite each body (a system prompt, sampling defaults), one
   with reflow capture off and one with it on, both shipping to a fake ingest: the TTFT capture adds, the
   adapter's peak RSS under 1 MiB prompts at concurrency 16, the body bytes the engine gets per byte sent, and
   whether every capture arrives once and redacted.

Output (stdout, ``name=value``; progress on stderr):

* ``adapter_added_ttft_p50_ms``, ``adapter_added_ttft_p99_ms``: through-adapter TTFT percentile minus direct
  TTFT percentile at concurrency 4 (target p50 ≤ 0.5);
* ``adapter_throughput_ratio_c64``: through-adapter / direct output tokens per second at concurrency 64
  (target ≥ 0.98);
* ``adapter_cpu_us_per_chunk``: adapter CPU µs per relayed SSE event (target ≤ 20);
* ``capture_added_ttft_p99_ms_220k_c16`` (target ≤ 10) and ``_p50_``: reflow capture on minus capture off, TTFT
  percentile, 220 KiB prompts at concurrency 16; ``capture_off_added_ttft_p99_ms_220k_c16``: capture off minus
  direct; ``adapter_added_ttft_p99_ms_1m_c1`` (target ≤ 15) and ``_p50_``: the capture-on adapter minus direct,
  1 MiB prompts one at a time; ``adapter_peak_rss_mib_1m_c16`` (target ≤ 150) and
  ``capture_worker_peak_rss_mib_1m_c16`` (its child processes, or ``none``); ``upstream_bytes_ratio_zh`` (target
  ≤ 1.01): body bytes the engine got / bytes the client sent, Chinese prompt; ``capture_records_expected``,
  ``_received``, ``_duplicated``, ``_unredacted`` and ``capture_dropped``, and the raw TTFT percentiles behind
  them (step 6; ``--large-only`` runs it alone, ``--skip-large`` skips it); with it, the cost of redaction per MiB
  of Chinese, English and digit-heavy text, ``redaction_ms_per_mib_{zh,en,digits}``, beside a same-run floor
  (``benchmarks/redaction.py``);
* ``engine_batching_speedup_c8``: output tokens/s with batching on / off at concurrency 8 (target ≥ 3);
* ``reference_pipe_added_ttft_p50_ms`` ... ``reference_pipe_cpu_us_per_chunk``: the same four figures for the
  bare byte pipe, the floor against which the adapter's are to be read on the machine that ran them;
* ``vllm_output_tok_s_c8``, ``engine_output_tok_s_c8``: output tokens/s at concurrency 8 (step 5), measured by
  ``serving.bench`` straight to vLLM and to our engine; ``engine_vs_vllm_throughput_c8``: engine / vLLM
  (reported, no target);
* ``adapter_ratio_on_vllm_c8``: through-adapter / direct output tokens/s in front of vLLM (target ≥ 0.97);
  ``reference_pipe_ratio_on_vllm_c8``: the same for the bare byte pipe in front of the same vLLM, its floor;
* ``bench_clients_ttft_p50_diff_pct``: TTFT p50 of ``vllm bench serve`` (a) against that of ``serving.bench``
  (b), both against our engine, as |a − b| / b × 100, each p50 over all the requests of its rounds (target
  ≤ 10);
* and the raw figures behind them: ``*_output_tok_s_*``, ``*_ttft_p*_ms*``, the relayed event count, and for
  the bench clients the prompt tokens per request each got billed (the shapes must match), the engine's own
  mean TTFT under each (``bench_clients_engine_ttft_mean_ms_*``, from its ``/metrics``: equal means a gap
  between a and b arose outside the engine) and ``engine_output_tok_s_c8_vllm_bench``. A part whose component
  is not installed (vLLM's runtime included: ``make install-vllm``) prints ``unavailable``.

Every number is measured on the run that prints it. Exit status: 0 when the benchmark ran (targets are not
asserted: a benchmark, not a test), 1 on any failure (a process that does not start, a failed request).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks import redaction
from benchmarks.serving_large import bench_large_prompts
from benchmarks.serving_support import (
    ROOT,
    START_TIMEOUT_S,
    BenchError,
    Process,
    adapter_config,
    available,
    bench,
    cpu_seconds,
    emit,
    free_port,
    log,
    start_adapter,
)
from benchmarks.serving_vllm import VLLM_PYTHON, VLLM_ROUNDS, bench_vllm
from serving.bench.metrics import percentile

__all__ = ["adapter_config", "available", "cpu_seconds", "main"]  # the helpers' old home: tests import them here

UPSTREAM_ARGS = ["--ttft-ms", "20", "--gap-ms", "5", "--tokens", "64"]
ROUNDS = 6
LOW = {"concurrency": 4, "num_requests": 32, "max_tokens": 8}  # TTFT rounds: short answers, many first tokens
HIGH = {"concurrency": 64, "num_requests": 256, "max_tokens": 64}  # throughput rounds: 4 waves of 64
ENGINE = {"concurrency": 8, "num_requests": 16, "max_tokens": 32, "prompt_len": 16, "ignore_eos": True}
ENGINE_ROUNDS = 4  # per mode, alternating (off on, on off, ...): short rounds, so several
ENGINE_START_TIMEOUT_S = 180.0


def bench_adapter(workdir: Path, rounds: int, stack: contextlib.ExitStack) -> None:
    upstream_port = free_port()
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
    # The upstream URL has no /v1: the fake upstream serves both /v1/... and /..., whichever the adapter appends.
    adapter = start_adapter(workdir, f"http://127.0.0.1:{upstream_port}", api_key)
    stack.callback(adapter.stop)
    adapter.wait_listening(START_TIMEOUT_S)
    adapter_url = f"http://127.0.0.1:{adapter.port}/v1"
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


def build_demo_model(workdir: Path) -> Path | None:
    """The demo model (``serving.demo_model --train-seconds 0``: deterministic, no training), or None without it."""
    if not available("serving.demo_model.__main__"):
        log("serving.demo_model is not available: skipping the measurements that need a model")
        return None
    model_dir = workdir / "demo_model"
    log(f"building the demo model in {model_dir}")
    build_args = [sys.executable, "-m", "serving.demo_model", "--out", str(model_dir), "--train-seconds", "0"]
    build = subprocess.run(build_args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if build.returncode != 0:
        raise BenchError(f"demo model build failed ({build.returncode}):\n{build.stderr[-3000:]}")
    return model_dir


def bench_engine(workdir: Path, model_dir: Path | None, stack: contextlib.ExitStack) -> None:
    if model_dir is None or not available("serving.engine.__main__"):
        log("serving.engine or serving.demo_model is not available: skipping the engine measurement")
        emit("engine_batching_speedup_c8", "unavailable")
        return
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
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (adapter part)")
    parser.add_argument("--vllm-rounds", type=int, default=VLLM_ROUNDS, help="interleaved rounds (vLLM part)")
    parser.add_argument("--skip-adapter", action="store_true")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--skip-large", action="store_true", help="skip the large-prompt part (step 6)")
    parser.add_argument("--large-only", action="store_true", help="run only the large-prompt part (step 6)")
    args = parser.parse_args(argv)
    if args.large_only:
        if args.skip_large:
            parser.error("--large-only and --skip-large exclude each other")
        args.skip_adapter = args.skip_engine = args.skip_vllm = True
    if not (1 <= args.rounds <= 100 and 1 <= args.vllm_rounds <= 100):
        parser.error("--rounds and --vllm-rounds must be within 1..100")
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, contextlib.ExitStack() as stack:
            workdir = Path(tmp)
            if not args.skip_adapter:
                bench_adapter(workdir, args.rounds, stack)
                stack.close()  # stop the upstream and the adapter before the engine needs the cores
            if not args.skip_large:
                bench_large_prompts(workdir, stack)
                stack.close()
                redaction.main()  # what the capture worker spends per MiB it redacts
            with_vllm = not args.skip_vllm and VLLM_PYTHON.is_file()
            model_dir = build_demo_model(workdir) if not args.skip_engine or with_vllm else None
            if not args.skip_engine:
                bench_engine(workdir, model_dir, stack)
                stack.close()  # the two engines go before vLLM starts
            if not args.skip_vllm:
                bench_vllm(workdir, model_dir, args.vllm_rounds, stack)
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, aiohttp.ClientError) as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
