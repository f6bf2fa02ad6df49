"""The vLLM part of ``make bench-serving``: our engine and our adapter against a real vLLM, our client against vLLM's.

``benchmarks/serving.py`` (its docstring, step 5) says what is measured and printed. Here: how.

One vLLM (``python -m serving.vllm_cpu serve``, as ``tests/vllm_runtime.py`` starts it), our engine (batching on,
default threads) and the adapter in front of vLLM run side by side for the whole part, with one
``vllm bench serve`` process kept loaded (``benchmarks/vllm_bench_runner.py``). Every round runs, in an order
that reverses from one round to the next, the same shape of load against each target:

* ``vllm``: ``serving.bench`` straight to vLLM;
* ``adapter``: ``serving.bench`` through the adapter to vLLM;
* ``engine``: ``serving.bench`` straight to our engine;
* ``engine_vllm_bench``: ``vllm bench serve`` straight to our engine.

The shape: chat completions, streamed with usage, concurrency 8, ``ignore_eos`` and 64 tokens out. The prompt is
32 tokens of message content: ``vllm bench serve``'s random dataset makes exactly that; ``serving.bench``'s
synthetic prompt is counted in words, so the word count whose prompts hold 32 tokens on average (the demo
model's tokenizer decides) is sent. Both go through the same chat template; the prompt tokens each client got
billed are printed, so the match can be checked.

Idle, vLLM costs almost no CPU, but after its last request its engine keeps a core busy for about a second (seen
here: 1.0 core for 1 s, then 0.04). So before every measured round the servers' process groups must be quiet
(``settle``): no target's round pays for the one before it, whatever the order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.serving_support import (
    ROOT,
    BenchError,
    Process,
    available,
    bench,
    emit,
    free_port,
    group_cpu_seconds,
    log,
    start_adapter,
    stop_group,
)
from serving.bench.client import BenchConfig, build_payload
from serving.bench.metrics import mean, percentile

VLLM_PYTHON = Path(os.environ.get("AICP_LOCAL_VLLM_PYTHON", ROOT / ".venv-vllm/bin/python"))
SERVED_NAME = "demo"
CONCURRENCY, NUM_REQUESTS, PROMPT_TOKENS, OUTPUT_TOKENS = 8, 32, 32, 64  # 4 waves of 8 per round
VLLM_ROUNDS = 10  # short rounds (~10 s for all four targets): the ratios need many on a busy machine
KV_CACHE_BYTES = 64 << 20  # as the suite: plenty for the demo model (512 positions), small on a shared machine
VLLM_START_TIMEOUT_S = 300.0  # 25-60 s on a quiet 2-core machine; several times that while others run tests
ENGINE_START_TIMEOUT_S = 180.0
VLLM_BENCH_TIMEOUT_S = 300.0
SETTLE_WINDOW_S, SETTLE_QUIET_CORES, SETTLE_TIMEOUT_S = 0.25, 0.15, 5.0
FIGURES = (
    "vllm_output_tok_s_c8", "engine_output_tok_s_c8", "engine_vs_vllm_throughput_c8",
    "adapter_output_tok_s_on_vllm_c8", "adapter_ratio_on_vllm_c8",
    "reference_pipe_output_tok_s_on_vllm_c8", "reference_pipe_ratio_on_vllm_c8",
    "bench_clients_ttft_p50_ms_vllm_bench", "bench_clients_ttft_p50_ms_serving_bench",
    "bench_clients_ttft_p50_diff_pct", "bench_clients_prompt_tokens_vllm_bench",
    "bench_clients_prompt_tokens_serving_bench", "bench_clients_engine_ttft_mean_ms_vllm_bench",
    "bench_clients_engine_ttft_mean_ms_serving_bench", "engine_output_tok_s_c8_vllm_bench",
)  # fmt: skip
ENGINE_TTFT = "aicp_engine_time_to_first_token_seconds"  # the engine's histogram: request arrival → first token


def vllm_environment() -> dict[str, str]:
    """No hub, no usage report, no stray API key (vLLM's client would send it); ``serving`` importable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "AICP_", "DATABASE_"))}
    env.pop("OPENAI_API_KEY", None)
    env.update({"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONPATH": str(ROOT)})
    return env


def prompt_words(model_dir: Path) -> int:
    """The ``serving.bench`` prompt length (in words) whose message content is closest to PROMPT_TOKENS tokens.

    Averaged over the prompt variants a round sends: the synthetic words take 2 to 4 tokens each.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def mean_tokens(words: int) -> float:
        config = BenchConfig(url="", concurrency=CONCURRENCY, num_requests=NUM_REQUESTS, prompt_len=words)
        bodies = [json.loads(build_payload(config, SERVED_NAME, v)) for v in range(NUM_REQUESTS)]
        counts = [len(tokenizer.encode(b["messages"][0]["content"], add_special_tokens=False)) for b in bodies]
        return sum(counts) / len(counts)

    return min(range(1, PROMPT_TOKENS + 1), key=lambda words: abs(mean_tokens(words) - PROMPT_TOKENS))


class VllmBench:
    """The loaded ``vllm bench serve`` (``benchmarks/vllm_bench_runner.py``): one run per ``run`` call."""

    def __init__(self, workdir: Path, model_dir: Path, base_url: str):
        self.model_dir, self.base_url = model_dir, base_url
        self.result_dir = workdir / "vllm_bench"
        self.result_dir.mkdir()
        self.log_path = workdir / "vllm_bench.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._pending = b""
        self.runs = 0
        log(f"starting vllm bench serve (kept loaded): {VLLM_PYTHON} -m benchmarks.vllm_bench_runner")
        self.proc = subprocess.Popen(
            [str(VLLM_PYTHON), "-m", "benchmarks.vllm_bench_runner"], cwd=ROOT, env=vllm_environment(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True,
        )  # fmt: skip

    def _answer(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"vllm bench serve did not answer within {timeout:.0f} s:\n{self.tail()}")
            if select.select([self.proc.stdout], [], [], min(left, 1.0))[0]:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    raise BenchError(f"vllm bench serve exited with {self.proc.wait(10)}:\n{self.tail()}")
                self._pending += data
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def wait_ready(self, timeout: float) -> None:
        if not self._answer(timeout).get("ready"):
            raise BenchError(f"vllm bench serve did not start:\n{self.tail()}")

    def run(self, num_prompts: int) -> dict:
        """One ``vllm bench serve`` run against the engine; its own result JSON (per-request lists included)."""
        self.runs += 1
        filename = f"run{self.runs}.json"
        args = ["--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", self.base_url]
        args += ["--model", SERVED_NAME, "--tokenizer", str(self.model_dir), "--dataset-name", "random"]
        args += ["--random-input-len", str(PROMPT_TOKENS), "--random-output-len", str(OUTPUT_TOKENS), "--ignore-eos"]
        args += ["--max-concurrency", str(CONCURRENCY), "--num-prompts", str(num_prompts), "--disable-tqdm"]
        args += ["--save-result", "--save-detailed", "--result-dir", str(self.result_dir)]
        args += ["--result-filename", filename]
        self.proc.stdin.write((json.dumps(args) + "\n").encode())
        self.proc.stdin.flush()
        answer = self._answer(VLLM_BENCH_TIMEOUT_S)
        if not answer.get("ok"):
            raise BenchError(f"vllm bench serve failed: {answer.get('error')}:\n{self.tail()}")
        result = json.loads((self.result_dir / filename).read_text())
        if result["failed"] or result["completed"] != num_prompts:
            errors = [e for e in result.get("errors", []) if e]
            raise BenchError(f"vllm bench serve: {result['failed']} of {num_prompts} failed, e.g. {errors[:1]}")
        return result

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in text if not line.startswith((" - ", "nanobind")))[-lines * 200 :]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # EOF: the runner's loop ends
        stop_group(self.proc, 10)
        self._log.close()


def engine_ttft_totals(port: int) -> tuple[float, float] | None:
    """(sum, count) of the engine's own TTFT histogram, None when its /metrics lacks it.

    Its mean, per client, tells a difference made inside the engine (the load the clients make) from one made
    outside it (each client's own overhead, the HTTP path), which the client-side TTFTs cannot tell apart.
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    totals = [re.search(rf"^{ENGINE_TTFT}_{part}(?:{{[^}}]*}})? (\S+)$", text, re.M) for part in ("sum", "count")]
    return (float(totals[0][1]), float(totals[1][1])) if all(totals) else None


def settle(pgids: list[int]) -> float:
    """Wait until the servers together use under SETTLE_QUIET_CORES over a window; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_TIMEOUT_S:
        before = sum(group_cpu_seconds(pgid) for pgid in pgids)
        time.sleep(SETTLE_WINDOW_S)
        if sum(group_cpu_seconds(pgid) for pgid in pgids) - before < SETTLE_QUIET_CORES * SETTLE_WINDOW_S:
            break
    return time.monotonic() - started


def bench_vllm(workdir: Path, model_dir: Path | None, rounds: int, stack: contextlib.ExitStack) -> None:
    if model_dir is None or not VLLM_PYTHON.is_file():
        why = "the demo model could not be built" if model_dir is None else f"{VLLM_PYTHON} is missing"
        log(f"{why} (make install-vllm): skipping the vLLM measurements")
        for name in FIGURES:
            emit(name, "unavailable")
        return
    with_engine = available("serving.engine.__main__")
    with_adapter = available("serving.adapter.__main__")
    vllm_port = free_port()
    serve_args = ["-m", "serving.vllm_cpu", "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(vllm_port)]
    serve_args += ["--served-model-name", SERVED_NAME, "--enforce-eager"]
    serve_args += ["--kv-cache-memory-bytes", str(KV_CACHE_BYTES)]
    vllm = Process("vllm", serve_args, vllm_port, workdir, python=VLLM_PYTHON, env=vllm_environment(), stop_timeout=30)
    stack.callback(vllm.stop)
    servers = [vllm]  # whose CPU must be quiet before a round
    started = time.monotonic()
    if with_engine:  # started while vLLM starts: nothing is measured yet
        engine_port = free_port()
        engine_args = ["-m", "serving.engine", "--model", str(model_dir), "--port", str(engine_port)]
        engine = Process("engine_vs_vllm", [*engine_args, "--served-model-name", SERVED_NAME], engine_port, workdir)
        stack.callback(engine.stop)
        servers.append(engine)
        vllm_bench = VllmBench(workdir, model_dir, f"http://127.0.0.1:{engine_port}")
        stack.callback(vllm_bench.stop)
    else:
        log("serving.engine is not available: skipping the engine and the bench-client comparison")
    words = prompt_words(model_dir)
    vllm.wait_healthy("/health", VLLM_START_TIMEOUT_S)
    log(f"vllm serve answered /health after {time.monotonic() - started:.0f} s")
    targets: dict[str, dict] = {"vllm": {"url": f"http://127.0.0.1:{vllm_port}/v1"}}
    if with_adapter:
        api_key = f"aicp_sk_1_{secrets.token_hex(16)}"
        adapter = start_adapter(workdir, f"http://127.0.0.1:{vllm_port}", api_key, model=SERVED_NAME)
        stack.callback(adapter.stop)
        servers.append(adapter)
        adapter.wait_listening(30)
        targets["adapter"] = {"url": f"http://127.0.0.1:{adapter.port}/v1", "api_key": api_key}
    else:
        log("serving.adapter is not available: skipping the adapter on vLLM")
    # The yardstick of the adapter's ratio: a bare TCP byte pipe in front of the same vLLM, the least any relay
    # on this machine costs (its CPU comes from the same two cores vLLM's API server and worker use).
    pipe_port = free_port()
    pipe_args = ["-m", "benchmarks.tcp_pipe", "--port", str(pipe_port), "--upstream-port", str(vllm_port)]
    pipe = Process("tcp_pipe_on_vllm", pipe_args, pipe_port, workdir)
    stack.callback(pipe.stop)
    servers.append(pipe)
    pipe.wait_listening(30)
    targets["pipe"] = {"url": f"http://127.0.0.1:{pipe_port}/v1"}
    if with_engine:
        engine.wait_listening(ENGINE_START_TIMEOUT_S)
        vllm_bench.wait_ready(VLLM_START_TIMEOUT_S)
        targets["engine"] = {"url": f"http://127.0.0.1:{engine_port}/v1"}
        targets["engine_vllm_bench"] = {}
    shape = {"concurrency": CONCURRENCY, "max_tokens": OUTPUT_TOKENS, "prompt_len": words, "ignore_eos": True}
    log(f"serving.bench prompts of {words} words (~{PROMPT_TOKENS} tokens); {len(targets)} targets, {rounds} rounds")

    def measure(kind: str, num_requests: int, warmup: int = 0) -> dict:
        """One round against one target: output tokens, seconds, per-request TTFTs and prompt tokens, and (for
        the engine; None elsewhere or without it) the change of its own TTFT histogram's sum and count."""
        before = engine_ttft_totals(engine_port) if kind.startswith("engine") else None
        if kind == "engine_vllm_bench":
            result = vllm_bench.run(num_requests)
            seconds, tokens = result["duration"], result["total_output_tokens"]
            figures = {"tokens": tokens, "seconds": seconds, "ttft": result["ttfts"], "prompt": result["input_lens"]}
        else:
            run = bench(**targets[kind], model=SERVED_NAME, warmup=warmup, num_requests=num_requests, **shape)
            figures = {"tokens": run.summary["total_output_tokens"], "seconds": run.duration}
            figures |= {"ttft": [r.ttft for r in run.results], "prompt": [r.prompt_tokens for r in run.results]}
        after = engine_ttft_totals(engine_port) if before else None
        figures["engine_ttft"] = [(after[0] - before[0], after[1] - before[1]) if after else None]
        return figures

    for kind in targets:  # warm-up: connections, first-request caches, vLLM's first batches
        measure(kind, CONCURRENCY, warmup=1)
    log(f"warmed up {', '.join(targets)}")
    totals = {kind: {"tokens": 0, "seconds": 0.0, "ttft": [], "prompt": [], "engine_ttft": []} for kind in targets}
    settled = 0.0
    for i in range(rounds):
        for kind in tuple(targets) if i % 2 == 0 else tuple(reversed(targets)):
            settled += settle([server.proc.pid for server in servers])
            for key, value in measure(kind, NUM_REQUESTS).items():
                totals[kind][key] += value
        rates = ", ".join(f"{kind} {t['tokens'] / t['seconds']:.0f}" for kind, t in totals.items())
        log(f"round {i + 1}/{rounds}: output tok/s at c{CONCURRENCY} so far: {rates}")
    log(f"waited {settled:.0f} s in all for the servers to go quiet before a round")
    emit_figures(totals, with_engine, with_adapter)


def emit_figures(totals: dict[str, dict], with_engine: bool, with_adapter: bool) -> None:
    throughput = {kind: t["tokens"] / t["seconds"] for kind, t in totals.items()}
    figures: dict[str, float] = {"vllm_output_tok_s_c8": round(throughput["vllm"], 1)}
    if with_engine:
        ttft_vllm_bench = percentile(totals["engine_vllm_bench"]["ttft"], 50) * 1000
        ttft_serving_bench = percentile(totals["engine"]["ttft"], 50) * 1000
        ttft_diff_pct = abs(ttft_vllm_bench - ttft_serving_bench) / ttft_serving_bench * 100
        figures |= {
            "engine_output_tok_s_c8": round(throughput["engine"], 1),
            "engine_vs_vllm_throughput_c8": round(throughput["engine"] / throughput["vllm"], 3),
            "bench_clients_ttft_p50_ms_vllm_bench": round(ttft_vllm_bench, 2),
            "bench_clients_ttft_p50_ms_serving_bench": round(ttft_serving_bench, 2),
            "bench_clients_ttft_p50_diff_pct": round(ttft_diff_pct, 2),
            "bench_clients_prompt_tokens_vllm_bench": round(mean(totals["engine_vllm_bench"]["prompt"]), 2),
            "bench_clients_prompt_tokens_serving_bench": round(mean(totals["engine"]["prompt"]), 2),
            "engine_output_tok_s_c8_vllm_bench": round(throughput["engine_vllm_bench"], 1),
        }
        for kind, client in (("engine_vllm_bench", "vllm_bench"), ("engine", "serving_bench")):
            rounds = totals[kind]["engine_ttft"]  # (sum, count) per round; None: /metrics has no TTFT histogram
            if rounds and None not in rounds:
                seconds, count = (sum(values) for values in zip(*rounds, strict=True))
                figures[f"bench_clients_engine_ttft_mean_ms_{client}"] = round(seconds / count * 1000, 2)
    if with_adapter:
        figures["adapter_output_tok_s_on_vllm_c8"] = round(throughput["adapter"], 1)
        figures["adapter_ratio_on_vllm_c8"] = round(throughput["adapter"] / throughput["vllm"], 4)
    figures["reference_pipe_output_tok_s_on_vllm_c8"] = round(throughput["pipe"], 1)
    figures["reference_pipe_ratio_on_vllm_c8"] = round(throughput["pipe"] / throughput["vllm"], 4)
    for name in FIGURES:
        emit(name, figures.get(name, "unavailable"))
