"""The ``local`` orchestrator with real processes: tasks reconciled into engine and adapter processes on this machine,
called over HTTP with the official ``openai`` client and a tenant API key. Nothing is faked: processes are killed
with real signals and found again with ``psutil``.

The demo model is built once per session; each test has its own run folder and storage root, and its teardown
stops every process carrying that run folder, whether the test passed or not.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest
import requests

from catalog.services import runtime_image_version_publish
from controlplane.errors import RuntimeNotInstalledError
from inference_jobs import orchestrator, reconciler, services
from inference_jobs.choices import TaskStatus
from inference_jobs.models import InferenceTask
from inference_jobs.orchestrator.local import processes, stop_all
from inference_jobs.orchestrator.local.runfolder import RunFolder, TaskState
from inference_jobs.orchestrator.spec import task_specs
from tenancy.choices import Role
from tenancy.services import tenant_api_key_create
from tests import factories
from tests.conftest import make_deployable, member_of
from tests.vllm_runtime import vllm_python

DEMO_TRAIN_STEPS = 40
CONVERGE_TIMEOUT_S = 120  # engines load in seconds, but this 2-core machine may be busy
VLLM_CONVERGE_TIMEOUT_S = 300  # vLLM's CPU runtime starts in 20-30 s idle, far slower beside the suite

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    import torch

    from serving.demo_model import build

    torch.set_num_threads(1)
    return build(tmp_path_factory.mktemp("local_demo_model"), seed=0, train_steps=DEMO_TRAIN_STEPS, log=lambda *_: None)


@dataclass
class Local:
    run_dir: Path
    storage_root: Path
    demo_model: Path


@pytest.fixture
def local(settings, tmp_path, demo_model):
    """The local orchestrator, with a run folder and a storage root of this test's own."""
    run_dir, storage_root = tmp_path / "run", tmp_path / "storage"
    settings.AICP_ORCHESTRATOR = "local"
    settings.AICP_LOCAL_RUN_DIR = run_dir
    settings.AICP_STORAGE_ROOT = storage_root
    settings.AICP_INGEST_URL = ""  # no control plane listens here: adapters spool and ship nothing
    yield Local(run_dir, storage_root, demo_model)
    stop_all(run_dir)
    assert processes.find_tagged(run_dir) == {}


@dataclass
class Deployed:
    task: InferenceTask
    member: object  # who stops, starts, scales and deletes it
    api_key: str
    port: int
    folder: RunFolder

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"http://127.0.0.1:{self.port}/v1", api_key=self.api_key, max_retries=0, timeout=60
        )

    def state(self) -> TaskState:
        return self.folder.load()

    def pids(self, kind: str) -> list[int]:
        return [getattr(instance, kind).pid for _, instance in sorted(self.state().instances.items())]

    def chat(self, content: str = "Hello", *, full_length: bool = False) -> tuple[str, str]:
        """A streamed chat completion through the gateway port, on a new connection: (text, finish reason).

        ``full_length`` asks the engine to run past end-of-sequence with a fixed seed, so the answer is always
        eight tokens long and ends with ``length``; without it the tiny demo model may stop at any token.
        """
        stream = self.client().chat.completions.create(
            model=self.task.effective_served_model_name,
            messages=[{"role": "user", "content": content}],
            stream=True,
            max_tokens=8,
            **({"seed": 0, "extra_body": {"ignore_eos": True}} if full_length else {}),
        )
        chunks = [chunk.choices[0] for chunk in stream if chunk.choices]
        return "".join(c.delta.content or "" for c in chunks), next(
            (c.finish_reason for c in chunks if c.finish_reason), ""
        )

    def answers(self) -> bool:
        """The stream runs to its end (the tiny demo model may well answer with no text at all)."""
        return self.chat()[1] in ("stop", "length")


def engine_requests(port: int) -> float:
    """Requests an engine has finished, from its Prometheus metrics."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("aicp_engine_requests_total")
    )


def context_length(model_dir: Path) -> int | None:
    """The model's context length as the upload's inspection finds it (None for a config that does not parse)."""
    try:
        return json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings")
    except ValueError:
        return None


def deploy(local: Local, *, model_dir: Path | None = None, **fields) -> Deployed:
    """A task of a CPU pool on a free port of 127.0.0.1, its model folder in place, its tenant with an API key."""
    port = processes.free_port()
    gateway = factories.GatewayFactory(port_range_start=port, port_range_end=port)
    deployable = make_deployable("acme", accelerator="cpu", gateway=gateway)
    model = deployable.model
    model.storage_path = f"models/acme/{model.pk}"
    model.context_length = context_length(model_dir or local.demo_model)
    model.save(update_fields=["storage_path", "context_length"])
    (local.storage_root / model.storage_path).parent.mkdir(parents=True)
    (local.storage_root / model.storage_path).symlink_to(model_dir or local.demo_model)
    admin = member_of(deployable.tenant, Role.ADMIN, user__username="acme-admin")
    api_key = tenant_api_key_create(actor=admin, tenant=deployable.tenant, name="app").plaintext
    fields = {"compute_units_per_instance": 1, **fields}
    task = services.task_create(actor=deployable.member, **deployable.task_fields(**fields))
    return Deployed(task, deployable.member, api_key, port, RunFolder(local.run_dir, task.pk))


def converge(deployed: Deployed, until: str, timeout_s: float = CONVERGE_TIMEOUT_S) -> None:
    """Reconcile the task (as the Celery follow-ups do) until it reports ``until``."""
    deadline = time.monotonic() + timeout_s
    while (result := reconciler.reconcile_task(deployed.task.pk)) != until:
        if time.monotonic() > deadline:
            task = InferenceTask.objects.get(pk=deployed.task.pk)
            logs = {p.name: processes.log_tail(p, 10) for p in deployed.folder.path.glob("instance-*/*.log")}
            pytest.fail(f"still {result} after {timeout_s} s: {task.status_message!r}; logs: {logs}")
        time.sleep(0.5)


def kill(pid: int) -> None:
    """SIGKILL, and wait until the process has exited (a zombie has)."""
    create_time = psutil.Process(pid).create_time()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.is_alive(pid, create_time):
        assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
        time.sleep(0.05)


def mentions(process: psutil.Process, text: str) -> bool:
    try:
        return text in " ".join(process.cmdline()) or text in json.dumps(process.environ())
    except psutil.Error:
        return False


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that run (not exited, not a zombie)."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


# ---- 1. a task runs and answers ---------------------------------------------------------------------------------


def test_a_task_runs_as_local_processes_and_streams_through_its_gateway_port(local):
    deployed = deploy(local)
    converge(deployed, TaskStatus.RUNNING)
    task = InferenceTask.objects.get(pk=deployed.task.pk)
    assert (task.status, task.ready_instances, task.status_message) == ("running", 1, "1 of 1 instance(s) ready.")

    text, finish_reason = deployed.chat("How do I reset my password?", full_length=True)
    assert text and finish_reason == "length"
    stranger = openai.OpenAI(base_url=f"http://127.0.0.1:{deployed.port}/v1", api_key="aicp_sk_1_x", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()

    (instance,) = deployed.state().instances.values()
    for pid in (instance.engine.pid, instance.adapter.pid):
        assert os.getsid(pid) != os.getsid(0)  # a session of its own: a Ctrl-C or a dying worker does not reach it
    config_path = deployed.folder.config_path(0)
    config = json.loads(config_path.read_text())
    assert config["task_id"] == task.pk and config["reflow"]["spool_dir"] == str(deployed.folder.spool_dir(0))
    assert config_path.stat().st_mode & 0o777 == 0o600  # it holds the ingest token
    assert "--reuse-port" in psutil.Process(instance.adapter.pid).cmdline()


SYSTEM_PROMPT = "You answer in one short sentence."


def test_a_high_performance_task_runs_vllm_behind_the_adapter_and_answers_the_openai_client(local):
    """SPEC's high-performance mode on the demo platform's kind of pool: vLLM's CPU runtime, started from
    ``.venv-vllm`` with the rendered ``vllm serve`` command, behind the adapter on the gateway port. The locked
    system prompt and greedy sampling reach vLLM: the task's answer is vLLM's own answer to the prompt with the
    system message, token for token."""
    vllm_python()
    deployed = deploy(
        local, mode="high_performance", system_prompt=SYSTEM_PROMPT, sampling_policy="locked", temperature=0.0
    )
    converge(deployed, TaskStatus.RUNNING, timeout_s=VLLM_CONVERGE_TIMEOUT_S)
    (instance,) = deployed.state().instances.values()
    engine = " ".join(psutil.Process(instance.engine.pid).cmdline())
    assert "-m serving.vllm_cpu serve" in engine and "--kv-cache-memory-bytes" in engine

    question = [{"role": "user", "content": "What is two plus two?"}]
    stream = deployed.client().chat.completions.create(
        model=deployed.task.effective_served_model_name, messages=question, max_tokens=12, temperature=1.5,
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert {chunk.model for chunk in chunks} == {deployed.task.effective_served_model_name}

    direct = openai.OpenAI(base_url=f"http://127.0.0.1:{instance.engine_port}/v1", api_key="x", max_retries=0)
    served = direct.models.list().data[0].id
    alone = direct.chat.completions.create(
        model=served, messages=[{"role": "system", "content": SYSTEM_PROMPT}, *question], max_tokens=12, temperature=0
    )
    assert text == alone.choices[0].message.content
    assert chunks[-1].usage.prompt_tokens == alone.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == alone.usage.completion_tokens

    completion = deployed.client().completions.create(
        model=deployed.task.effective_served_model_name, prompt="Once upon a time", max_tokens=6
    )
    assert completion.usage.completion_tokens > 0 and completion.choices[0].finish_reason in ("stop", "length")


def test_a_high_performance_task_without_the_vllm_runtime_is_refused_before_it_is_created(local, settings, tmp_path):
    settings.AICP_LOCAL_VLLM_PYTHON = tmp_path / "no-venv" / "bin" / "python"
    with pytest.raises(RuntimeNotInstalledError, match="make install-vllm"):
        deploy(local, mode="high_performance")
    assert InferenceTask.objects.count() == 0


# ---- 2. a dead process is restarted ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["engine", "adapter"])
def test_one_sweep_restarts_a_killed_process_and_the_task_answers_again(local, kind):
    deployed = deploy(local)
    converge(deployed, TaskStatus.RUNNING)
    (old,) = deployed.pids(kind)
    (other,) = deployed.pids("adapter" if kind == "engine" else "engine")
    kill(old)

    reconciler.reconcile_sweep()
    (new,) = deployed.pids(kind)
    assert new != old and alive([new]) == [new]
    assert deployed.pids("adapter" if kind == "engine" else "engine") == [other]  # the other one is left alone
    assert getattr(deployed.state().instances[0], kind).restarts == 1
    converge(deployed, TaskStatus.RUNNING)
    assert deployed.answers()


# ---- 3. delete leaves nothing -------------------------------------------------------------------------------


def test_delete_leaves_no_process_and_no_run_folder(local):
    deployed = deploy(local, instances=2)
    converge(deployed, TaskStatus.RUNNING)
    pids = deployed.pids("engine") + deployed.pids("adapter")
    assert len(alive(pids)) == 4

    services.task_delete(actor=deployed.member, task=deployed.task)
    assert reconciler.reconcile_task(deployed.task.pk) == "deleted"
    assert alive(pids) == []
    run_folder = str(deployed.folder.path)
    assert [p.pid for p in psutil.process_iter() if mentions(p, run_folder)] == []
    assert not deployed.folder.path.exists()
    assert not InferenceTask.objects.filter(pk=deployed.task.pk).exists()


# ---- 4. stop, start, scale, update-image, a new config --------------------------------------------------------


def test_stop_start_scale_update_image_and_config_changes(local):
    deployed = deploy(local)
    converge(deployed, TaskStatus.RUNNING)
    first = deployed.pids("engine") + deployed.pids("adapter")

    services.task_stop(actor=deployed.member, task=deployed.task)
    assert reconciler.reconcile_task(deployed.task.pk) == TaskStatus.STOPPED
    assert alive(first) == [] and deployed.state().instances == {}

    services.task_start(actor=deployed.member, task=deployed.task)
    converge(deployed, TaskStatus.RUNNING)
    assert deployed.answers()

    services.task_scale(actor=deployed.member, task=deployed.task, instances=2)
    converge(deployed, TaskStatus.RUNNING)
    engines, adapters = deployed.pids("engine"), deployed.pids("adapter")
    assert len(alive(engines)) == 2 and len(alive(adapters)) == 2
    for pid in adapters:  # both adapters listen on the gateway port (SO_REUSEPORT)
        assert processes.listens_on(pid, deployed.port)
    # Each call opens a new connection, which the kernel gives to one of the adapters: 16 reach both engines.
    assert all(deployed.answers() for _ in range(16))
    assert all(engine_requests(instance.engine_port) > 0 for instance in deployed.state().instances.values())
    assert InferenceTask.objects.get(pk=deployed.task.pk).ready_instances == 2

    # Sampling values and the system prompt live in the adapter's config: the adapters restart, the engines stay.
    services.task_update(actor=deployed.member, task=deployed.task, temperature=0.2, system_prompt="Be brief.")
    converge(deployed, TaskStatus.RUNNING)
    assert deployed.pids("engine") == engines
    assert set(deployed.pids("adapter")).isdisjoint(adapters) and alive(adapters) == []
    assert json.loads(deployed.folder.config_path(1).read_text())["system_prompt"] == "Be brief."

    image = deployed.task.runtime_image_version.image
    runtime_image_version_publish(actor=None, image=image, version="9.9.9")
    services.task_update_image(actor=deployed.member, task=InferenceTask.objects.get(pk=deployed.task.pk))
    before = deployed.pids("engine") + deployed.pids("adapter")
    assert reconciler.reconcile_task(deployed.task.pk) == TaskStatus.UPDATING
    after = deployed.pids("engine") + deployed.pids("adapter")
    assert set(after).isdisjoint(before) and alive(before) == []
    assert {json.loads(deployed.folder.config_path(i).read_text())["runtime_image_version"] for i in (0, 1)} == {
        "9.9.9"
    }
    converge(deployed, TaskStatus.RUNNING)

    services.task_scale(actor=deployed.member, task=deployed.task, instances=1)
    assert reconciler.reconcile_task(deployed.task.pk) == TaskStatus.RUNNING
    assert alive(after) == [after[0], after[2]]  # instance 1's engine and adapter are stopped
    assert deployed.answers()


# ---- 5. crash loop ------------------------------------------------------------------------------------------------


def test_an_engine_that_keeps_failing_to_load_is_a_crash_loop_retried_with_a_back_off(local, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(local.demo_model, broken)
    good_config = (broken / "config.json").read_text()
    (broken / "config.json").write_text('{"architectures": [')
    deployed = deploy(local, model_dir=broken)

    converge(deployed, TaskStatus.FAILED)
    task = InferenceTask.objects.get(pk=deployed.task.pk)
    assert "The engine of instance 0 keeps exiting" in task.status_message
    assert "config.json' is not a valid JSON file" in task.status_message  # the cause, from the engine's log
    assert task.events.filter(reason="CrashLoop", level="error").count() == 1
    engine = deployed.state().instances[0].engine
    assert engine.quick_exits >= 3 and engine.retry_at > time.time() - 1

    # Retries go on (with a back-off): once the model is fixed, the task comes up without anyone asking.
    (broken / "config.json").write_text(good_config)
    converge(deployed, TaskStatus.RUNNING)
    assert deployed.answers()


# ---- 6. processes outlive the worker that started them ----------------------------------------------------------

WORKER = """
import os, pickle, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
import django
django.setup()
from inference_jobs.orchestrator.local.backend import LocalBackend
local, spec = pickle.loads(open(sys.argv[1], "rb").read())
print(LocalBackend(local).apply(spec).status)
"""


def test_processes_outlive_the_worker_that_started_them_and_stop_all_and_orphans(local, tmp_path):
    deployed = deploy(local)
    job = tmp_path / "job.pickle"
    job.write_bytes(pickle.dumps((orchestrator.local_settings(), task_specs([deployed.task.pk])[0])))
    worker = subprocess.run([sys.executable, "-c", WORKER, str(job)], capture_output=True, text=True, timeout=60)
    assert worker.returncode == 0 and worker.stdout.strip() == TaskStatus.DEPLOYING, worker.stderr
    pids = deployed.pids("engine") + deployed.pids("adapter")
    assert len(alive(pids)) == 2  # the worker is gone, its processes are not

    converge(deployed, TaskStatus.RUNNING)  # every reconcile builds a fresh backend, as a new worker would
    assert deployed.pids("engine") + deployed.pids("adapter") == pids
    assert [proc.restarts for proc in deployed.state().instances[0].processes().values()] == [0, 0]
    assert deployed.answers()

    # `make run` stops everything on its way out; the next reconcile starts the task again (not as restarts).
    assert stop_all(local.run_dir) == 2
    assert alive(pids) == [] and deployed.folder.state_path.exists()
    converge(deployed, TaskStatus.RUNNING)
    assert [proc.restarts for proc in deployed.state().instances[0].processes().values()] == [0, 0]

    # A task that is gone from the database (not deleted through the services): the sweep removes its leftovers.
    pids = deployed.pids("engine") + deployed.pids("adapter")
    InferenceTask.objects.filter(pk=deployed.task.pk).delete()
    assert reconciler.reconcile_sweep()["orphans_deleted"] == 1
    assert alive(pids) == [] and not deployed.folder.path.exists()
    assert processes.find_tagged(local.run_dir) == {}
