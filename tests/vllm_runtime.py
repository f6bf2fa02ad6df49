"""vLLM's CPU runtime for the suite: where it is, and a real ``vllm serve`` on a free port.

The runtime is ``.venv-vllm`` (``make install-vllm``, which ``make test`` runs first). Tests that need it run
wherever it is installed; without it they skip with the command that installs it, except in CI (``CI=true``),
where a missing runtime fails them: CI must never pass with the vLLM tests quietly left out.

``VllmServer`` starts ``python -m serving.vllm_cpu serve`` (the launcher the local orchestrator uses) in a session
of its own, waits for ``/health`` and stops the whole process group on exit. Idle, the server costs no CPU; while
it serves, vLLM's CPU backend busy-polls, so fixtures keep it only as long as their module runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240  # 20-30 s on an idle 2-core machine with --enforce-eager; much more while the suite runs
KV_CACHE_BYTES = 64 << 20  # plenty for the demo model (512 positions), and small on a shared machine


def vllm_python() -> Path:
    """The vLLM runtime's interpreter, or the test is skipped (failed under ``CI=true``)."""
    from django.conf import settings

    python = Path(settings.AICP_LOCAL_VLLM_PYTHON)
    if not python.is_file():
        message = f"vLLM's CPU runtime is not installed ({python}): run `make install-vllm`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vllm_environment() -> dict[str, str]:
    """No hub, no usage report; ``serving`` importable for the launcher."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "AICP_", "DATABASE_"))}
    env.update({"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"})
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


class VllmServer:
    """``vllm serve <model>`` on 127.0.0.1, with the flags the tests need on top of the essentials."""

    def __init__(self, model: Path, *, served_model_name: str = "demo", extra: tuple[str, ...] = (), log: Path):
        self.model, self.served_model_name, self.extra, self.log = model, served_model_name, extra, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        command = [str(vllm_python()), "-m", "serving.vllm_cpu", "serve", str(self.model)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--served-model-name", self.served_model_name]
        command += ["--enforce-eager", "--kv-cache-memory-bytes", str(KV_CACHE_BYTES)]
        return [*command, *self.extra]

    def start(self) -> VllmServer:
        command = self.command()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=vllm_environment(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"vllm serve exited with {self.process.returncode}: {self.tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"vllm serve did not answer /health within {START_TIMEOUT_S} s: {self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # vLLM's engine and worker processes are in the same session; make sure none outlives the server.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
