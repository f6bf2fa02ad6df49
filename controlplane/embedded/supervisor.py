"""``make run``: the whole platform on one machine, started and stopped as one.

Migrates the database, starts the web server, a Celery worker and Celery beat as child processes, sets up the
demo platform meanwhile, and prints the console's address and the demo sign-ins once the web server answers.
Ctrl-C (SIGINT) or SIGTERM stops the children (SIGTERM, a grace period, then SIGKILL) and then every engine
and adapter the local orchestrator started, so that nothing keeps running; the tasks' desired state stays in
the database and the next ``make run``'s first reconcile sweep starts them again.

Each child runs in its own session, so the terminal's Ctrl-C reaches only this process, which stops the
children in order (a Celery worker hit by SIGINT directly would start its own shutdown dance). Should this
process die without cleaning up, Linux sends each child SIGTERM (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DEFAULT_PORT = 8000
STOP_GRACE_S = 10.0  # a Celery worker finishes its running reconcile within this, else it is killed
WEB_READY_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1


def say(message: str = "") -> None:
    print(f"aicp: {message}" if message else "", flush=True)


class StopRequested(Exception):
    """SIGTERM arrived: stop as Ctrl-C would."""


def _raise_stop(signum, frame) -> None:
    raise StopRequested


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the supervisor dies."""
    # Elsewhere than Linux the children outlive a supervisor that was killed with SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One long-running process of the platform, its output appended to a log file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last lines this run wrote (the log file also holds earlier runs, each after a ``---`` line)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.rsplit("\n--- ", 1)[-1].splitlines()[1:][-lines:]


class Children:
    """Start several children, notice the first that dies, stop them all."""

    def __init__(self, children: list[Child]):
        self.children = children

    def start(self, env: dict[str, str]) -> None:
        for child in self.children:
            child.start(env)

    def first_exited(self) -> Child | None:
        return next((child for child in self.children if child.exit_code is not None), None)

    def wait_for_exit(self, poll_s: float = 0.5) -> Child:
        """Block until a child exits (unexpectedly: nothing asks them to) and return it."""
        while (exited := self.first_exited()) is None:
            time.sleep(poll_s)
        return exited

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to each child, wait up to ``grace_s`` for all, then SIGKILL each child's whole process group
        (the worker's pool processes and anything else a child started in its session)."""
        running = [child for child in self.children if child.process is not None]
        for child in running:
            if child.exit_code is None:
                _signal_pid(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in running:
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                say(f"{child.name} did not stop within {grace_s:.0f} s; killing it")
        for child in running:
            _signal_group(child.process.pid, signal.SIGKILL)  # its session's leftovers, or itself if it hung
            child.process.wait()


def _signal_pid(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@dataclass(frozen=True)
class EmbeddedConfig:
    port: int
    var_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"


def embedded_environment(port: int) -> dict[str, str]:
    """What the embedded default needs in every process's environment, unless the caller already set it. The
    settings' defaults give the rest (the local orchestrator, a reconcile sweep every 5 s)."""
    return {
        "AICP_INGEST_URL": f"http://127.0.0.1:{port}/api/v1/ingest/",  # where the local adapters ship records
        "HF_HUB_OFFLINE": "1",  # nothing here downloads models
        "PYTHONUNBUFFERED": "1",  # log files show what happened up to a crash
    }


def platform_children(config: EmbeddedConfig) -> list[Child]:
    python, logs = sys.executable, config.log_dir
    celery = [python, "-m", "celery", "-A", "controlplane"]
    return [
        Child(
            "web",
            [python, "manage.py", "runserver", f"127.0.0.1:{config.port}", "--noreload", "--skip-checks"],
            logs / "web.log",
        ),
        Child(
            "worker",
            # One worker on one machine: no other workers to synchronise with at start-up (mingle, gossip).
            [*celery, "worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle", "--without-gossip"],
            logs / "worker.log",
        ),
        Child(
            "beat",
            [*celery, "beat", "--loglevel=INFO", "--schedule", str(config.var_dir / "celerybeat-schedule")],
            logs / "beat.log",
        ),
    ]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def web_answers(base_url: str) -> bool:
    """The console's sign-in page answers (or, without a console, the API root answers at all)."""
    try:
        with urllib.request.urlopen(base_url + "login/", timeout=2) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            return False
    except (urllib.error.URLError, OSError):
        return False
    try:
        urllib.request.urlopen(base_url + "api/v1/", timeout=2).close()
        return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500  # 401/403 unauthenticated: served
    except (urllib.error.URLError, OSError):
        return False


def wait_for_web(base_url: str, children: Children, timeout_s: float = WEB_READY_TIMEOUT_S) -> Child | None:
    """Wait until the web server answers; returns a child that died meanwhile, if one did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if exited := children.first_exited():
            return exited
        if web_answers(base_url):
            return None
        time.sleep(0.2)
    raise TimeoutError(f"the web server did not answer at {base_url} within {timeout_s:.0f} s")


def stop_local_engines() -> int | None:
    """Stop every engine and adapter the local orchestrator started; None when it is not in use."""
    from django.conf import settings

    if settings.AICP_ORCHESTRATOR != "local":
        return None
    try:
        from inference_jobs.orchestrator.local import stop_all
    except ImportError:
        return None
    return stop_all()


def report_death(child: Child) -> None:
    code = child.exit_code
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited unexpectedly (exit code {code})"
    say(f"{child.name} {how}; stopping the rest. Its log ends with:")
    for line in child.log_tail():
        print(f"  {child.name}| {line}", flush=True)


def print_banner(config: EmbeddedConfig, platform, demo_config, children: Children) -> None:
    from django.conf import settings

    from controlplane.embedded.demo import login_lines, platform_lines

    database = settings.DATABASES["default"]
    say()
    say(f"AICP is running: {config.url}")
    say(f"{'API:':<30} {config.url}api/v1/ (docs: {config.url}api/docs/)")
    for line in login_lines(platform, demo_config) + platform_lines(platform):
        say(line)
    say(f"{'database:':<30} {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}")
    say(f"{'logs:':<30} {', '.join(str(child.log_path) for child in children.children)}")
    say(f"{'orchestrator:':<30} {settings.AICP_ORCHESTRATOR}")
    say("Next: sign in as demo, create an API key, deploy demo-chat on cpu behind local (README: First steps).")
    say("Press Ctrl-C to stop everything.")


def run(config: EmbeddedConfig) -> int:
    """Bring the platform up, wait for Ctrl-C / SIGTERM or a child's death, then bring it all down."""
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    from controlplane.embedded.demo import DemoConfig, demo_platform_setup

    say(f"migrating the database ({config.var_dir})")
    call_command("migrate", interactive=False, verbosity=0)
    children = Children(platform_children(config))
    exit_code = 0
    try:
        children.start(dict(os.environ))
        say(f"started web (127.0.0.1:{config.port}), worker and beat; logs in {config.log_dir}")
        demo_config = DemoConfig.from_environment()
        platform = demo_platform_setup(demo_config, log=say)
        if platform.created:
            say("created " + ", ".join(platform.created))
        connections.close_all()  # the supervisor holds no database connection while it only watches
        exited = wait_for_web(config.url, children)
        if exited is None:
            print_banner(config, platform, demo_config, children)
            exited = children.wait_for_exit()
        report_death(exited)
        exit_code = 1
    except (KeyboardInterrupt, StopRequested):
        say("stopping")
    except TimeoutError as exc:
        say(f"{exc}; see {config.log_dir / 'web.log'}")
        exit_code = 1
    except Exception:  # reported, then everything is stopped
        traceback.print_exc()
        exit_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping is bounded by the grace period: let it finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        started = time.monotonic()
        children.stop()
        try:
            engines = stop_local_engines()
        except Exception:  # the children are stopped; say what failed rather than hide it
            traceback.print_exc()
            engines, exit_code = None, 1
        stopped = "stopped web, worker and beat" + (f", and {engines} local task process(es)" if engines else "")
        say(f"{stopped} in {time.monotonic() - started:.1f} s")
    return exit_code


def main() -> int:
    port = int(os.environ.get("AICP_PORT", DEFAULT_PORT))
    for key, value in embedded_environment(port).items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    if port_in_use(port):
        say(f"port {port} on 127.0.0.1 is in use (another `make run`?); stop it or pick one: AICP_PORT=8001 make run")
        return 1
    # Ctrl-C stops everything even where the shell started us with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    from django.conf import settings

    try:
        return run(EmbeddedConfig(port=port, var_dir=Path(settings.VAR_DIR)))
    except (KeyboardInterrupt, StopRequested):  # before any child started (e.g. during the migration)
        say("stopped")
        return 0
