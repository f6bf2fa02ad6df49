"""Starting, recognising, checking and stopping the local backend's processes.

A process is known by its pid *and* its create time (``psutil``): a pid alone may belong to an unrelated process
once ours has exited. Processes start in a session of their own (``start_new_session``), so the worker that
started them can exit, be restarted or be killed, and a Ctrl-C in its terminal never reaches them; each is the
leader of its own process group, which is what a stop signals. Each carries ``AICP_LOCAL_TASK_DIR`` (its task's
run folder) in its environment, so that processes no state file lists any more can still be found and stopped.

No Django import here (see ``runfolder.py``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import socket
import subprocess
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psutil

TASK_DIR_VARIABLE = "AICP_LOCAL_TASK_DIR"
SERVING_MODULES = ("serving.engine", "serving.vllm_cpu", "serving.adapter")
# Never handed to the data plane: the control plane's own configuration and secrets.
_CONTROL_PLANE_PREFIXES = ("DJANGO_", "DATABASE_", "CELERY_", "AICP_")
LOG_ROTATE_BYTES = 10 * 1024 * 1024
LOG_TAIL_LINES = 6
Identity = tuple[int, float]  # (pid, create time)

# Popen objects of the processes this process started: polling them reaps an exited child (else it would stay a
# zombie until we exit), and keeping them alive avoids Popen's "still running" warning when one is collected.
_children: dict[int, subprocess.Popen] = {}


def serving_environment(task_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(_CONTROL_PLANE_PREFIXES)}
    # No hub and no usage report at run time, for our engine and vLLM alike.
    env.update({"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"})
    env[TASK_DIR_VARIABLE] = str(task_dir)
    return env


def spawn(command: list[str], *, cwd: Path, env: dict[str, str], log_path: Path) -> Identity:
    """Start ``command`` detached from this process's session, its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists() and log_path.stat().st_size > LOG_ROTATE_BYTES:
        log_path.replace(log_path.with_name(log_path.name + ".1"))
    with open(log_path, "ab") as log:
        log.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} start: {shlex.join(command)}\n".encode())
        log.flush()
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    try:
        return child.pid, psutil.Process(child.pid).create_time()
    except psutil.NoSuchProcess:
        return child.pid, 0.0  # exited at once: the next look notes the exit


def is_alive(pid: int, create_time: float) -> bool:
    """Whether the process we started as ``pid`` still runs (a zombie has exited; a reused pid is not ours)."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - create_time) < 0.01 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(identities: list[Identity], grace_s: float = 5.0) -> int:
    """SIGTERM each live process's group, wait up to ``grace_s`` for all of them, SIGKILL what is left.
    Returns how many were running."""
    alive = [identity for identity in dict.fromkeys(identities) if is_alive(*identity)]
    leaders = [pid for pid, _ in alive if _leads_its_group(pid)]
    for pid, _ in alive:
        _signal_group(pid, signal.SIGTERM)
    waiting = _wait_for_exit(alive, grace_s)
    for pid, _ in waiting:
        _signal_group(pid, signal.SIGKILL)
    _wait_for_exit(waiting, 2.0)
    for pid in leaders:  # a child that outlived its leader (vLLM's engine-core and worker processes) goes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return len(alive)


def _leads_its_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _signal_group(pid: int, signum: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # its own group (start_new_session): reach whatever it started, too
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_for_exit(identities: list[Identity], timeout_s: float) -> list[Identity]:
    """Those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while identities and time.monotonic() < deadline:
        time.sleep(0.05)
        identities = [identity for identity in identities if is_alive(*identity)]
    return identities


def find_tagged(run_dir: Path) -> dict[Path, list[Identity]]:
    """Every live engine or adapter process that carries a task folder under ``run_dir``, by that folder. Reads
    the environment only of processes whose command line runs a serving module, so a scan stays cheap."""
    root = Path(run_dir).resolve()
    found: dict[Path, list[Identity]] = defaultdict(list)
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if not any(module in cmdline for module in SERVING_MODULES):
            continue
        try:
            task_dir = process.environ().get(TASK_DIR_VARIABLE)
            identity = (process.pid, process.create_time())
            if task_dir and Path(task_dir).parent == root and process.status() != psutil.STATUS_ZOMBIE:
                found[Path(task_dir)].append(identity)
        except psutil.Error:
            continue
    return found


def port_is_free(port: int, wait_s: float = 1.0) -> bool:
    """Whether a server could bind ``port`` on 127.0.0.1 (with SO_REUSEADDR, as aiohttp binds), waiting up to
    ``wait_s``: the kernel closes the sockets of a process that was just killed some milliseconds after it
    could be reaped (measured: ~40 ms), and its listening socket holds the port until then."""
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
        time.sleep(0.02)


def free_port(exclude: set[int] = frozenset()) -> int:
    """A port that is free on 127.0.0.1 now, chosen by the kernel, and not one of ``exclude``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in exclude:
            return port


def http_ok(port: int, path: str, timeout_s: float = 1.0) -> bool:
    """Whether ``GET http://127.0.0.1:<port><path>`` answers 200 within ``timeout_s`` (never through a proxy)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def listens_on(pid: int, port: int) -> bool:
    """Whether the process holds a listening TCP socket on ``port``: with SO_REUSEPORT several adapters share the
    gateway port, and this tells each one's readiness apart (a request to the port reaches any of them)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log (a traceback's cause is at its end), without our start markers, blank lines and
    the ``^^^^`` markers Python puts under a traceback's code lines."""
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 8192))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.rstrip()[:300] for line in text.splitlines() if line.strip(" ^~\t") and not line.startswith("--- ")]
    return "\n".join(kept[-lines:])


def last_write(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
