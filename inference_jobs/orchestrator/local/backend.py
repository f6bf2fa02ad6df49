"""The ``local`` orchestrator: a task's instances become processes on this machine (``docs/local.md``).

Per instance, an engine (``python -m serving.engine``) on a free port of 127.0.0.1 and an adapter
(``python -m serving.adapter``) in front of it on the task's gateway port; the adapters of one task share that
port with SO_REUSEPORT, so the kernel spreads connections over the instances.

Level-based like the Kubernetes backend, and a kubelet at the same time: each pass compares the task's run folder
(``runfolder.py``) with the spec, starts what is missing, restarts what exited (counting it; an instance that keeps
exiting right after it starts is a crash loop, retried with a back-off), replaces what was started with another
command or config, stops what is no longer wanted, and checks readiness over HTTP. A pass over a converged task
starts and stops nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from compute_pools.choices import Mode
from inference_jobs.choices import TaskStatus
from inference_jobs.orchestrator.adapter import adapter_config
from inference_jobs.orchestrator.engine import EngineHost, engine_command
from inference_jobs.orchestrator.local import processes
from inference_jobs.orchestrator.local.runfolder import (
    ADAPTER,
    ENGINE,
    InstanceState,
    ProcessState,
    RunFolder,
    TaskState,
    task_folders,
)
from inference_jobs.orchestrator.results import Observation, SweepResult

if TYPE_CHECKING:
    from inference_jobs.orchestrator.spec import TaskSpec

log = logging.getLogger(__name__)

CRASH_WINDOW_S = 30.0  # an exit this soon after a start counts towards a crash loop
CRASH_LOOP_EXITS = 3  # consecutive quick exits that make a crash loop
BACKOFF_S, BACKOFF_MAX_S = 10.0, 300.0  # wait before each start once in a crash loop: 10, 20, 40, ... 300 s
UNREADY_AFTER_FAILURES = 3  # failed checks before a ready instance counts as not ready (a busy engine is slow)

PROJECT_ROOT = Path(__file__).resolve().parents[3]

KEPT, STARTED, RESTARTED, REPLACED, BACKING_OFF = "kept", "started", "restarted", "replaced", "backing-off"


@dataclass(frozen=True)
class LocalSettings:
    """Where and how this installation runs tasks locally (``AICP_LOCAL_*`` settings)."""

    run_dir: Path
    storage_root: Path
    engine_threads: int = 0  # our engine's --threads; 0 leaves the engine's own default
    vllm_python: Path = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"  # the vLLM runtime's interpreter
    working_dir: Path = PROJECT_ROOT  # the processes' working folder, where ``serving`` is importable
    python: str = sys.executable
    stop_grace_s: float = 5.0
    health_timeout_s: float = 1.0


def vllm_runtime_missing(python: Path) -> str | None:
    """Why high-performance tasks cannot run here, or None: they need vLLM's CPU runtime, its own environment
    (``make install-vllm`` builds ``.venv-vllm``; ``AICP_LOCAL_VLLM_PYTHON`` names another interpreter)."""
    if Path(python).is_file():
        return None
    return (
        f"High-performance mode runs vLLM, and this machine's vLLM runtime ({python}) is not installed: run "
        "`make install-vllm`, or choose normal mode."
    )


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class LocalBackend:
    def __init__(self, local: LocalSettings):
        self.local = local

    # ---- what a task's processes are started with -----------------------------------------------------------

    def model_dir(self, spec: TaskSpec) -> Path:
        return Path(self.local.storage_root) / spec.model_path

    def engine_command(self, spec: TaskSpec, port: int) -> list[str]:
        """The command of ``orchestrator/engine.py``, on this machine's CPU: vLLM from its own environment."""
        host = EngineHost(
            model=str(self.model_dir(spec)),
            port=port,
            vllm=(str(self.local.vllm_python), "-m", "serving.vllm_cpu"),
            python=self.local.python,
            threads=self.local.engine_threads or None,
            cpu_only=True,
        )
        return engine_command(spec, host)

    def adapter_command(self, spec: TaskSpec, folder: RunFolder, index: int, engine_port: int) -> list[str]:
        command = [self.local.python, "-m", "serving.adapter", "--config", str(folder.config_path(index))]
        command += ["--upstream", f"http://127.0.0.1:{engine_port}", "--host", "127.0.0.1"]
        return [*command, "--port", str(spec.port), "--reuse-port"]

    def refusal(self, spec: TaskSpec) -> Observation | None:
        """Why the task cannot run here at all, if it cannot."""
        if spec.mode == Mode.HIGH_PERFORMANCE and (missing := vllm_runtime_missing(self.local.vllm_python)):
            return Observation(TaskStatus.FAILED, "RuntimeNotInstalled", missing)
        if spec.port is None:
            return Observation(TaskStatus.FAILED, "NoGatewayPort", "The task holds no gateway port to listen on.")
        if not spec.model_path or not self.model_dir(spec).is_dir():
            message = f"The model's folder {self.model_dir(spec)} does not exist; upload the model again."
            return Observation(TaskStatus.FAILED, "ModelNotFound", message)
        return None

    # ---- one task -------------------------------------------------------------------------------------------

    def apply(self, spec: TaskSpec, tagged: list[processes.Identity] | None = None) -> Observation:
        """Converge one task's processes and report what they do. ``tagged``: the processes a sweep found carrying
        this task's run folder; those the state does not list (a worker died between a start and its save)
        are stopped."""
        folder = RunFolder(self.local.run_dir, spec.id)
        with folder.locked():
            state = folder.load()
            strays = set(tagged or ()) - set(state.running())
            if strays:
                log.warning("task %s: stopping %d process(es) its state does not list", spec.id, len(strays))
                processes.stop(list(strays), self.local.stop_grace_s)
            refusal = self.refusal(spec) if spec.instances else None
            if refusal is not None and refusal.reason == "ModelNotFound":
                return refusal  # what runs keeps running (its weights are loaded); nothing new can start
            wanted = 0 if refusal is not None else spec.instances
            self._stop_instances(state, [index for index in state.instances if index >= wanted])
            restarted = False
            for index in range(wanted):
                restarted |= self._converge_instance(spec, folder, state, index)
            observation = refusal or self._observe(spec, state, restarted)
            folder.save(state)
            return observation

    def _converge_instance(self, spec: TaskSpec, folder: RunFolder, state: TaskState, index: int) -> bool:
        """Start, restart or replace the instance's engine and adapter; True when one had exited."""
        taken = {other.engine_port for i, other in state.instances.items() if i != index}
        instance = state.instances.get(index)
        if instance is None:
            instance = state.instances[index] = InstanceState(engine_port=processes.free_port(taken | {spec.port}))
        now = time.time()
        for kind, proc in instance.processes().items():
            self._note_exit(proc, folder.log_path(index, kind), now)
        if not instance.engine.pid and not processes.port_is_free(instance.engine_port):
            instance.engine_port = processes.free_port(taken | {spec.port})  # someone took it meanwhile
        engine_command = self.engine_command(spec, instance.engine_port)
        config = json.dumps(adapter_config(spec, str(folder.spool_dir(index))), indent=2, sort_keys=True)
        folder.write_config(index, config)
        adapter_command = self.adapter_command(spec, folder, index, instance.engine_port)
        env = processes.serving_environment(folder.path)
        actions = [
            self._converge_process(
                instance.engine, _digest(engine_command, spec.image_version), engine_command, env,
                folder.log_path(index, ENGINE), now,
            ),
            self._converge_process(
                instance.adapter, _digest(adapter_command, config, spec.image_version), adapter_command, env,
                folder.log_path(index, ADAPTER), now,
            ),
        ]  # fmt: skip
        if any(action not in (KEPT, BACKING_OFF) for action in actions):
            instance.ready, instance.health_failures = False, 0
        return RESTARTED in actions

    def _note_exit(self, proc: ProcessState, log_path: Path, now: float) -> None:
        """A recorded process that no longer runs: count a quick exit, keep its last log lines, set the back-off.
        The exit time is estimated by the log's last write (a traceback is the last thing a crash writes)."""
        if not proc.pid or processes.is_alive(proc.pid, proc.create_time):
            return
        exited_at = min(now, max(proc.started_at, processes.last_write(log_path)))
        quick = not proc.settled and exited_at - proc.started_at < CRASH_WINDOW_S
        proc.quick_exits = proc.quick_exits + 1 if quick else 0
        proc.last_exit_log = processes.log_tail(log_path)
        proc.pid, proc.create_time = 0, 0.0
        if proc.quick_exits >= CRASH_LOOP_EXITS:
            proc.retry_at = now + min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (proc.quick_exits - CRASH_LOOP_EXITS))
        last_line = proc.last_exit_log.splitlines()[-1] if proc.last_exit_log else "no output"
        log.warning("%s exited (%s quick exit(s) in a row): %s", log_path, proc.quick_exits, last_line)

    def _converge_process(
        self, proc: ProcessState, spec_hash: str, command: list[str], env: dict, log_path: Path, now: float
    ) -> str:
        if proc.pid and proc.spec_hash == spec_hash:
            if not proc.settled and now - proc.started_at >= CRASH_WINDOW_S:
                proc.settled, proc.quick_exits, proc.retry_at = True, 0, 0.0
            return KEPT
        if proc.pid:  # started with another command or config: replace it
            processes.stop([(proc.pid, proc.create_time)], self.local.stop_grace_s)
            proc.forget()
            action = REPLACED
        elif proc.spec_hash != spec_hash:  # never started, or its spec changed while it was down: start at once
            proc.forget()
            action = STARTED
        elif now < proc.retry_at:
            return BACKING_OFF
        else:
            proc.restarts += 1
            action = RESTARTED
        proc.pid, proc.create_time = processes.spawn(command, cwd=self.local.working_dir, env=env, log_path=log_path)
        proc.spec_hash, proc.started_at, proc.settled = spec_hash, time.time(), False
        return action

    def _stop_instances(self, state: TaskState, indexes: list[int]) -> int:
        """Stop the instances' processes (all signalled together) and drop them from the state."""
        doomed = [state.instances.pop(index) for index in indexes]
        identities = [(p.pid, p.create_time) for instance in doomed for p in instance.processes().values() if p.pid]
        return processes.stop(identities, self.local.stop_grace_s) if identities else 0

    def _observe(self, spec: TaskSpec, state: TaskState, restarted: bool = False) -> Observation:
        """Ready: the engine answers ``/health``, the adapter listens on the gateway port, and the gateway port
        answers ``/healthz``. A crash loop of a process that is not ready makes the task failed."""
        if spec.instances == 0:
            return Observation(TaskStatus.STOPPED, "Stopped", "", 0)
        timeout = self.local.health_timeout_s
        gateway_ok = any(i.adapter.pid for i in state.instances.values()) and processes.http_ok(
            spec.port, "/healthz", timeout
        )
        ready = 0
        for instance in state.instances.values():
            ok = (
                gateway_ok
                and bool(instance.engine.pid and instance.adapter.pid)
                and processes.listens_on(instance.adapter.pid, spec.port)
                and processes.http_ok(instance.engine_port, "/health", timeout)
            )
            instance.health_failures = 0 if ok else instance.health_failures + 1
            instance.ready = ok or (instance.ready and instance.health_failures < UNREADY_AFTER_FAILURES)
            ready += instance.ready
        for index, instance in sorted(state.instances.items()):
            for kind, proc in instance.processes().items():
                if proc.quick_exits >= CRASH_LOOP_EXITS and not instance.ready:
                    message = (
                        f"The {kind} of instance {index} keeps exiting within {CRASH_WINDOW_S:.0f} s of starting; "
                        f"it is restarted with a back-off. The end of its log:\n{proc.last_exit_log}"
                    )
                    return Observation(TaskStatus.FAILED, "CrashLoop", message, ready)
        message = f"{ready} of {spec.instances} instance(s) ready."
        if ready >= spec.instances:
            return Observation(TaskStatus.RUNNING, "Running", message, ready)
        return Observation(TaskStatus.DEPLOYING, "Restarting" if restarted else "Starting", message, ready)

    def remove(self, spec: TaskSpec, tagged: list[processes.Identity] | None = None) -> bool:
        """Stop every process of the task (those a state lists and those carrying its run folder) and remove
        the run folder; True once nothing of it is left."""
        folder = RunFolder(self.local.run_dir, spec.id)
        if tagged is None:
            tagged = processes.find_tagged(self.local.run_dir).get(folder.path, [])
        return self._remove_folder(folder, tagged)

    def _remove_folder(self, folder: RunFolder, tagged: list[processes.Identity]) -> bool:
        with folder.locked():
            identities = [*folder.load().running(), *tagged]
            processes.stop(identities, self.local.stop_grace_s)
            if any(processes.is_alive(*identity) for identity in identities):
                return False  # a process ignores even SIGKILL (uninterruptible I/O): look again later
            folder.remove()
        return True

    # ---- everything -------------------------------------------------------------------------------------------

    def sweep(self, specs: list[TaskSpec], tenant_slugs: set[str]) -> SweepResult:
        """Converge every task, then stop and remove what belongs to no task: run folders of tasks that are
        gone, and processes carrying such a folder. (``tenant_slugs``: nothing local is per tenant.)"""
        result = SweepResult()
        tagged = processes.find_tagged(self.local.run_dir)
        for spec in specs:
            mine = tagged.pop(RunFolder(self.local.run_dir, spec.id).path, [])
            try:
                if not spec.deleting:
                    result.observations[spec.id] = self.apply(spec, mine)
                elif self.remove(spec, mine):
                    result.removed.add(spec.id)
            except (OSError, psutil.Error) as exc:
                result.errors[spec.id] = exc
        known = {spec.id for spec in specs}
        for task_id, folder in task_folders(self.local.run_dir).items():
            if task_id not in known:
                log.info("removing the run folder of task %s, which no longer exists", task_id)
                self._remove_folder(folder, tagged.pop(folder.path, []))
                result.orphans_deleted += 1
        for identities in tagged.values():  # processes of no known task whose run folder is gone too
            result.orphans_deleted += processes.stop(identities, self.local.stop_grace_s)
        return result
