"""``make demo-check``: from a fresh start, ``make run`` reaches a working console and a task created from the demo
model answers an ``openai`` client call through its access URL; unattended, then Ctrl-C leaves nothing behind.

What it does:

1. makes sure the demo model is in its cache (``controlplane.embedded.model_cache``; building it takes tens of
   seconds on a small CPU, once per virtual environment). This happens before the clock starts:
   ``demo_model_cached=1`` says that the times below do not include the build;
2. starts the real ``make run`` as a subprocess in a session of its own, with a fresh ``AICP_VAR_DIR`` (SQLite
   file, storage, broker, run folders and credentials in a temporary folder), a free web port (``AICP_PORT``)
   and a free range of 16 gateway ports (``AICP_DEMO_GATEWAY_PORT_START``), and no ``DATABASE_URL`` or
   ``CELERY_*`` from the caller's environment: the embedded default. The clock (t0) starts here;
3. waits for the console's sign-in page; issues a personal API token for ``demo`` with
   ``manage.py issue_api_token`` (against the same folder); through the REST API creates a tenant API key,
   finds the ``demo-chat`` model, dry-runs and then creates a normal-mode task on pool ``cpu`` behind gateway
   ``local``;
4. calls the task's access URL with the official ``openai`` client (``stream=True``, chat completion), retrying
   while the task starts, until the first streamed token;
5. sends SIGINT to ``make run``'s process group, as Ctrl-C in a terminal does, waits for it to exit, and counts
   the processes of that run (its process tree, and anything carrying its var folder in its environment: web,
   worker, beat, engines, adapters) still alive.

Output (stdout, ``name=value``, each measured on this run; progress on stderr): ``demo_model_cached``,
``demo_model_build_s`` (only when this run built the cache), ``console_ready_s``, ``task_running_s`` (the API
first reports ``running``), ``time_to_first_answer_s`` (all three from t0), ``stop_s`` and ``leftover_processes``.
Exit status 0 only when every step passed, nothing was left running and ``time_to_first_answer_s`` is under
``TARGET_FIRST_ANSWER_S``. On failure the temporary folder (with ``make-run.log`` and ``log/``) is kept.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai
import psutil
import requests

from controlplane.embedded.model_cache import ensure_demo_model
from controlplane.embedded.supervisor import web_answers

BASE_DIR = Path(__file__).resolve().parent.parent
TARGET_FIRST_ANSWER_S = 60.0
DEADLINE_S = 180.0  # past the target, so that a slow run still reports how slow it was
STOP_TIMEOUT_S = 60.0
GATEWAY_PORTS = 16
TASK_NAME = "demo-check"
QUESTION = "What is a fox?"
# Variables that would take `make run` away from the embedded default; the check runs it as a newcomer would.
FOREIGN_PREFIXES = ("AICP_", "CELERY_", "DATABASE_")
KEPT = ("AICP_DEMO_MODEL_CACHE", "AICP_DEMO_MODEL_TRAIN_STEPS")  # where the cached model is, and which one


class CheckFailed(Exception):
    pass


def progress(message: str) -> None:
    print(f"demo-check: {message}", file=sys.stderr, flush=True)


def report(name: str, value) -> None:
    print(f"{name}={value}", flush=True)


def seconds(value: float) -> str:
    return f"{value:.2f}"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_range(count: int, *, avoid: int) -> int:
    """The first port of ``count`` consecutive free ports, away from the usual 8000/18000 of a real `make run`."""
    for _ in range(500):
        start = random.randrange(20000, 60000 - count)
        ports = range(start, start + count)
        if avoid not in ports and all(port_free(port) for port in ports):
            return start
    raise CheckFailed(f"no {count} consecutive free ports found")


def run_environment(var_dir: Path, web_port: int, gateway_start: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES) or key in KEPT}
    env.update(AICP_VAR_DIR=str(var_dir), AICP_PORT=str(web_port), AICP_DEMO_GATEWAY_PORT_START=str(gateway_start))
    return env


@dataclass
class Run:
    """The ``make run`` under test and what was measured of it."""

    var_dir: Path
    web_port: int
    env: dict[str, str]
    process: subprocess.Popen | None = None
    t0: float = 0.0
    task_running_at: float | None = None
    task_status: str = ""
    task_status_message: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"

    @property
    def log_path(self) -> Path:
        return self.var_dir / "make-run.log"

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.t0 = time.monotonic()
            self.process = subprocess.Popen(
                ["make", "--no-print-directory", "run"],
                cwd=BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, which "Ctrl-C" signals as a terminal would
            )

    def ensure_alive(self) -> None:
        if self.process.poll() is not None:
            raise CheckFailed(f"make run exited with {self.process.returncode}:\n{self.log_tail()}")
        if self.elapsed() > DEADLINE_S:
            raise CheckFailed(f"gave up after {DEADLINE_S:.0f} s")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for_console(run: Run) -> None:
    while not web_answers(run.base_url):
        run.ensure_alive()
        time.sleep(0.1)
    report("console_ready_s", seconds(run.elapsed()))


def issue_token(run: Run) -> str:
    """A personal API token for ``demo``, as the README tells a newcomer; retried until the set-up made the user."""
    command = [sys.executable, "manage.py", "issue_api_token", "demo", "--name", "demo-check", "--skip-checks"]
    while True:
        run.ensure_alive()
        done = subprocess.run(command, cwd=BASE_DIR, env=run.env, capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().splitlines()[-1]
        time.sleep(0.3)


def api_call(api: requests.Session, run: Run, method: str, path: str, expected: int, **kwargs) -> dict:
    response = api.request(method, run.base_url + "api/v1/" + path, timeout=30, **kwargs)
    if response.status_code != expected:
        raise CheckFailed(f"{method} /api/v1/{path} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def ready_demo_model(api: requests.Session, run: Run) -> int:
    """The id of ``demo-chat``, once the set-up has registered it and it is ready."""
    while True:
        run.ensure_alive()
        page = api_call(api, run, "GET", "models/", 200, params={"tenant": "demo", "q": "demo-chat"})
        for model in page.get("results", page if isinstance(page, list) else []):
            if model["name"] == "demo-chat":
                if model["status"] == "ready":
                    return model["id"]
                if model["status"] == "failed":
                    raise CheckFailed(f"the demo model failed: {model.get('status_message')}")
        time.sleep(0.3)


def create_task(api: requests.Session, run: Run, model_id: int) -> dict:
    payload = {
        "tenant": "demo",
        "name": TASK_NAME,
        "model": model_id,
        "mode": "normal",
        "compute_pool": "cpu",
        "gateway": "local",
    }
    verdict = api_call(api, run, "POST", "tasks/dry-run/", 200, json=payload)
    if not verdict["accepted"]:
        refused = [f"{v['rule']}: {v['message']}" for v in verdict["verdicts"] if not v["accepted"]]
        raise CheckFailed("the dry run refused the task: " + "; ".join(refused))
    progress(f"dry run: every rule passed ({len(verdict['verdicts'])}); creating the task")
    return api_call(api, run, "POST", "tasks/", 201, json=payload)


def watch_task_status(api: requests.Session, run: Run, task_id: int, stop: threading.Event) -> None:
    """Record when the API first reports the task running (the reconciler's view, next to the caller's)."""
    while not stop.is_set() and run.task_running_at is None:
        try:
            task = api.get(f"{run.base_url}api/v1/tasks/{task_id}/", timeout=10).json()
            run.task_status, run.task_status_message = task.get("status", ""), task.get("status_message", "")
            if run.task_status == "running":
                run.task_running_at = time.monotonic()
        except (requests.RequestException, ValueError):
            pass
        stop.wait(0.25)


def first_answer(run: Run, task: dict, api_key: str) -> float:
    """Stream a chat completion through the access URL until the first token arrives; returns its time."""
    client = openai.OpenAI(base_url=task["access_url"], api_key=api_key, max_retries=0, timeout=30)
    last_error = ""
    while True:
        try:
            run.ensure_alive()
        except CheckFailed as exc:
            status = f"task status {run.task_status!r} {run.task_status_message!r}"
            raise CheckFailed(f"{exc}; no answer ({status}; last call: {last_error})") from exc
        answer, first_at = [], None
        try:
            stream = client.chat.completions.create(
                model=task["served_model_name"],
                messages=[{"role": "user", "content": QUESTION}],
                stream=True,
                max_tokens=48,
            )
            for chunk in stream:
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text:
                    first_at = first_at or time.monotonic()
                    answer.append(text)
            last_error = "a stream without any token"
        except openai.APIError as exc:  # not listening yet, starting (502/503), a stream cut short ...
            last_error = f"{type(exc).__name__}: {exc}"[:300]
        if first_at is not None:
            progress(f"{task['access_url']} answered {QUESTION!r} with {''.join(answer)!r}")
            return first_at
        time.sleep(0.25)


def exercise(run: Run) -> None:
    wait_for_console(run)
    progress(f"console answers at {run.base_url}; issuing an API token for demo")
    token = issue_token(run)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    api_key = api_call(api, run, "POST", "api-keys/", 201, json={"tenant": "demo", "name": "demo-check"})["key"]
    task = create_task(api, run, ready_demo_model(api, run))
    progress(f"task {task['id']} created ({task['status']}), access URL {task['access_url']}; calling it")
    stop_watching = threading.Event()
    watcher = threading.Thread(target=watch_task_status, args=(api, run, task["id"], stop_watching), daemon=True)
    watcher.start()
    try:
        answered_at = first_answer(run, task, api_key)
    finally:
        watcher.join(timeout=5)  # it stops by itself once it saw `running`; give it a moment to see it
        stop_watching.set()
    if run.task_running_at is not None:
        report("task_running_s", seconds(run.task_running_at - run.t0))
    time_to_first_answer = answered_at - run.t0
    report("time_to_first_answer_s", seconds(time_to_first_answer))
    if time_to_first_answer >= TARGET_FIRST_ANSWER_S:
        run.failures.append(f"time_to_first_answer_s {time_to_first_answer:.1f} is not under {TARGET_FIRST_ANSWER_S}")
    for sanity, problem in (
        (run.var_dir / "aicp.sqlite3", "the database is not the embedded SQLite file (DATABASE_URL in .env?)"),
        (run.var_dir / "celery", "the broker is not the embedded filesystem broker (CELERY_BROKER_URL in .env?)"),
    ):
        if not sanity.exists():
            run.failures.append(problem)


def run_processes(run: Run) -> dict[int, psutil.Process]:
    """Every live process of the run: make's process tree, and whatever carries the run's var folder in its
    environment (the local backend's engines and adapters leave the tree: they start in sessions of their own)."""
    found: dict[int, psutil.Process] = {}
    with_marker = str(run.var_dir)
    try:
        root = psutil.Process(run.process.pid)
        for process in [root, *root.children(recursive=True)]:
            found[process.pid] = process
    except psutil.NoSuchProcess:
        pass
    for process in psutil.process_iter():
        try:
            env = process.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
        if env.get("AICP_VAR_DIR") == with_marker or env.get("AICP_LOCAL_TASK_DIR", "").startswith(with_marker):
            found[process.pid] = process
    found.pop(os.getpid(), None)
    return found


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop(run: Run) -> None:
    """Ctrl-C as a terminal sends it (SIGINT to the foreground process group), then count what is left."""
    before = run_processes(run)
    started = time.monotonic()
    if run.process.poll() is None:
        os.killpg(run.process.pid, signal.SIGINT)
        try:
            run.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.failures.append(f"make run did not exit within {STOP_TIMEOUT_S:.0f} s of Ctrl-C")
    report("stop_s", seconds(time.monotonic() - started))
    if "aicp: stopped web, worker and beat" not in run.log_path.read_text(errors="replace"):
        run.failures.append("make run did not report a clean stop")
    deadline = time.monotonic() + 5  # a process may take a moment to go once signalled
    while time.monotonic() < deadline and any(alive(process) for process in before.values()):
        time.sleep(0.1)
    leftovers = {pid: process for pid, process in {**before, **run_processes(run)}.items() if alive(process)}
    report("leftover_processes", len(leftovers))
    for process in leftovers.values():
        try:
            progress(f"left running: pid {process.pid}: {' '.join(process.cmdline())[:200]}; killing it")
            process.kill()
        except psutil.Error:
            pass
    if leftovers:
        run.failures.append(f"{len(leftovers)} process(es) of make run were left running")


def main() -> int:
    cached = ensure_demo_model(log=progress)
    report("demo_model_cached", 1)  # the times below start after the (cached) build
    if cached.build_s is not None:
        report("demo_model_build_s", seconds(cached.build_s))
    var_dir = Path(tempfile.mkdtemp(prefix="aicp-demo-check-"))
    web_port = free_port()
    gateway_start = free_port_range(GATEWAY_PORTS, avoid=web_port)
    run = Run(var_dir=var_dir, web_port=web_port, env=run_environment(var_dir, web_port, gateway_start))
    progress(f"make run in {var_dir} (web port {web_port}, gateway ports {gateway_start}-{gateway_start + 15})")
    run.start()
    try:
        exercise(run)
    except CheckFailed as exc:
        run.failures.append(str(exc))
    except KeyboardInterrupt:
        run.failures.append("interrupted")
    finally:
        stop(run)
    if run.failures:
        for failure in run.failures:
            progress(f"FAILED: {failure}")
        progress(f"kept {var_dir} (make-run.log, log/, run/) for a look")
        return 1
    shutil.rmtree(var_dir, ignore_errors=True)
    progress("passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
