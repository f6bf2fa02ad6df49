"""A task's run folder: what the local backend keeps on disk, so that any worker, started at any time, knows which
processes are a task's and what they were started with. Nothing of it lives in a worker's memory.

Layout under ``AICP_LOCAL_RUN_DIR``::

    task-<id>/
        state.json                  per instance: engine port, each process's pid, create time, hash, restarts
        instance-<n>/
            adapter.json            the adapter's config (mode 0600: it holds the ingest token)
            spool/                  the adapter's metric and reflow spools (one writer each, so one per instance)
            engine.log, adapter.log stdout and stderr of each process, appended across restarts
    .locks/task-<id>                a flock: one worker at a time converges a task

No Django import here (``stop_all`` runs from the ``make run`` supervisor, before or without the app registry).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

TASK_PREFIX = "task-"
LOCKS_FOLDER = ".locks"
ENGINE, ADAPTER = "engine", "adapter"


@dataclass
class ProcessState:
    """One engine or adapter process. ``pid`` 0: not running (never started, stopped, or its exit noted)."""

    pid: int = 0
    create_time: float = 0.0  # with the pid, tells our process from another that got its pid later
    spec_hash: str = ""  # of what it was started with; "" when it was never started with the current spec
    started_at: float = 0.0
    settled: bool = False  # seen alive past the crash window: a later exit is not part of a crash loop
    restarts: int = 0  # starts after an exit with the same spec (what a kubelet's restartCount counts)
    quick_exits: int = 0  # consecutive exits within the crash window of their start
    retry_at: float = 0.0  # during a crash loop: no new start before this time (back-off)
    last_exit_log: str = ""  # the last lines of its log when its last exit was noted

    def forget(self) -> None:
        """Not running, and the next start is a first start (no restart counted, no back-off)."""
        self.pid, self.create_time, self.spec_hash, self.settled = 0, 0.0, "", False
        self.quick_exits, self.retry_at = 0, 0.0


@dataclass
class InstanceState:
    engine_port: int
    engine: ProcessState = field(default_factory=ProcessState)
    adapter: ProcessState = field(default_factory=ProcessState)
    ready: bool = False
    health_failures: int = 0  # consecutive failed readiness checks since it was last ready

    def processes(self) -> dict[str, ProcessState]:
        return {ENGINE: self.engine, ADAPTER: self.adapter}


@dataclass
class TaskState:
    task_id: int
    instances: dict[int, InstanceState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TaskState:
        raw = json.loads(text)
        instances = {}
        for index, item in raw.get("instances", {}).items():
            engine, adapter = ProcessState(**item.pop(ENGINE)), ProcessState(**item.pop(ADAPTER))
            instances[int(index)] = InstanceState(engine=engine, adapter=adapter, **item)
        return cls(task_id=int(raw["task_id"]), instances=instances)

    def running(self) -> list[tuple[int, float]]:
        """(pid, create time) of every process recorded as running."""
        return [
            (proc.pid, proc.create_time)
            for instance in self.instances.values()
            for proc in instance.processes().values()
            if proc.pid
        ]


class RunFolder:
    """The paths of one task's run folder, its state file and its lock."""

    def __init__(self, run_dir: Path, task_id: int):
        self.run_dir, self.task_id = Path(run_dir).resolve(), task_id  # as processes carry it (find_tagged)
        self.path = self.run_dir / f"{TASK_PREFIX}{task_id}"
        self.state_path = self.path / "state.json"
        self.lock_path = self.run_dir / LOCKS_FOLDER / f"{TASK_PREFIX}{task_id}"

    def instance_dir(self, index: int) -> Path:
        return self.path / f"instance-{index}"

    def config_path(self, index: int) -> Path:
        return self.instance_dir(index) / "adapter.json"

    def spool_dir(self, index: int) -> Path:
        return self.instance_dir(index) / "spool"

    def log_path(self, index: int, kind: str) -> Path:
        return self.instance_dir(index) / f"{kind}.log"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the task's lock: a sweep and a reconcile of the same task must not both start its processes."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> TaskState:
        try:
            return TaskState.from_json(self.state_path.read_text())
        except FileNotFoundError:
            return TaskState(self.task_id)
        except (ValueError, KeyError, TypeError) as exc:
            # A torn or hand-edited file: start from nothing; the sweep stops the processes it no longer lists.
            log.warning("task %s: unreadable %s (%s); starting from an empty state", self.task_id, self.state_path, exc)
            return TaskState(self.task_id)

    def save(self, state: TaskState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomically(self.state_path, state.to_json())

    def write_config(self, index: int, text: str) -> bool:
        """Write the instance's adapter config when it differs; True when it changed."""
        path = self.config_path(index)
        try:
            if path.read_text() == text:
                return False
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text, mode=0o600)
        return True

    def remove(self) -> None:
        """The run folder and the lock file (called with the lock held, once no process is left)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.lock_path.unlink(missing_ok=True)


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Readers see the old or the new file, never half of one (a worker may die mid-write)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def task_folders(run_dir: Path) -> dict[int, RunFolder]:
    """Every task run folder under ``run_dir``, by task id."""
    folders = {}
    if not Path(run_dir).is_dir():
        return folders
    for path in Path(run_dir).iterdir():
        suffix = path.name.removeprefix(TASK_PREFIX)
        if path.is_dir() and path.name.startswith(TASK_PREFIX) and suffix.isdigit():
            folders[int(suffix)] = RunFolder(run_dir, int(suffix))
    return folders
