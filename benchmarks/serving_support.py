"""What the parts of ``make bench-serving`` share: child servers, the bench client call, the adapter's config.

``benchmarks/serving.py`` says what the benchmark does; this module only holds the plumbing its parts use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from serving.bench.client import BenchConfig, BenchRun, run_benchmark

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
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


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in a process group (a server and the workers it forked)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
                if os.getpgid(int(entry.name)) == pgid:
                    total += cpu_seconds(int(entry.name))
    return total


class Process:
    """A child server on a local port: output to a log file, shown when it fails; stopped on exit.

    Each child runs in a session of its own and is stopped as a process group, so that servers which fork
    workers (vLLM's engine core) leave nothing behind.
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        port: int,
        workdir: Path,
        *,
        python: str | Path = sys.executable,
        env: dict[str, str] | None = None,
        stop_timeout: float = 10.0,
    ):
        self.name, self.port, self.stop_timeout = name, port, stop_timeout
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        log(f"starting {name}: {' '.join(args)}")
        self.proc = subprocess.Popen(
            [str(python), *args], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def wait_listening(self, timeout: float) -> None:
        """Until the port accepts connections; the process dying or the timeout is a BenchError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not listen on port {self.port} within {timeout:.0f} s:\n{self.tail()}")

    def wait_healthy(self, path: str, timeout: float) -> None:
        """Until ``GET path`` answers 200 (vLLM listens before its engine is ready; /health waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            url = f"http://127.0.0.1:{self.port}{path}"
            with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.5)
        raise BenchError(f"{self.name} did not answer {path} within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_group(self.proc, self.stop_timeout)
        self._log.close()


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``timeout``; no member may outlive the leader."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError):  # workers that outlived a leader that exited on its own
        os.killpg(proc.pid, signal.SIGKILL)


def bench(url: str, *, api_key: str | None = None, model: str | None = None, warmup: int = 0, **shape) -> BenchRun:
    config = BenchConfig(url=url, api_key=api_key, model=model, warmup=warmup, timeout_s=REQUEST_TIMEOUT_S, **shape)
    run = asyncio.run(run_benchmark(config))
    failed = [r.error for r in run.results if not r.success]
    if failed:
        raise BenchError(f"{len(failed)} of {len(run.results)} requests to {url} failed, e.g. {failed[0]}")
    return run


def adapter_config(path: Path, api_key: str, model: str = "bench", **options) -> None:
    """A throw-away task config: one API key, no rate limit to speak of, no system prompt, no ingest.

    ``options`` set top-level keys of that config (``system_prompt``, ``sampling``, ``reflow``, ``ingest``, ...:
    see ``serving/adapter/config.py``, which refuses an unknown key at startup, so a typo fails loudly there).
    """
    config = {
        "task_id": 1,
        "tenant_id": 1,
        "served_model_name": model,
        "upstream_model": model,
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
    path.write_text(json.dumps(config | options, indent=2))


def start_adapter(
    workdir: Path, upstream: str, api_key: str, *, model: str = "bench", name: str | None = None, **options
) -> Process:
    """``python -m serving.adapter`` on a free local port in front of ``upstream`` (a base URL without /v1).

    ``name`` (default ``adapter_<model>``) names its config and log files, so several adapters can share a
    workdir; ``options`` go to ``adapter_config``.
    """
    name = name or f"adapter_{model}"
    config_path = workdir / f"{name}.json"
    adapter_config(config_path, api_key, model, **options)
    port = free_port()
    args = ["-m", "serving.adapter", "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    return Process(name, [*args, "--upstream", upstream], port, workdir)
