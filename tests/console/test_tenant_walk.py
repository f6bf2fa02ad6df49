"""A tenant user's walk in a real browser, on the embedded default's own demo platform and the `local`
orchestrator: sign in → create an API key → create a task from the demo model (the live dry run accepts it) →
the task reaches running (real engine and adapter processes) → the playground streams an answer through the
task's access URL → the captured reflow record appears, is approved, and the export downloads it → delete
leaves no process. A second walk creates a high-performance task on the same CPU pool: vLLM's CPU runtime serves
it behind the adapter, and the playground streams its answer.

Stand-in: the Celery worker and beat are replaced by a thread that runs the reconciler's sweep every second
(`tests/test_celery.py` shows reconciles going through a real broker and worker); everything else is real.
"""

from __future__ import annotations

import json
import random
import threading
import time

import psutil
import pytest
from django.db import connection

from controlplane.embedded.demo import DemoConfig, demo_platform_setup
from inference_jobs import reconciler
from inference_jobs.models import InferenceTask
from inference_jobs.orchestrator.local import stop_all
from inference_jobs.orchestrator.local.processes import find_tagged, port_is_free
from inference_jobs.orchestrator.local.runfolder import RunFolder
from inference_jobs.tasks import reconcile_task
from tests import factories
from tests.console.conftest import screenshot, sign_in
from tests.vllm_runtime import vllm_python

pytestmark = pytest.mark.django_db(transaction=True)

RUNNING_WITHIN_S = 120  # two engine starts on a busy 2-core machine, with margin
QUESTION = "What is the capital of France?"
# The playground's last answer has finished streaming (its bubble loses the `streaming` class).
ANSWERED = """() => {
  const bubbles = document.querySelectorAll("#chat .bubble.assistant");
  const last = bubbles[bubbles.length - 1];
  return Boolean(last) && !last.classList.contains("streaming") && last.textContent.trim().length > 0;
}"""


def free_port_range(count: int = 16) -> int:
    for _ in range(200):
        start = random.randrange(20_000, 40_000)
        if all(port_is_free(port) for port in range(start, start + count)):
            return start
    raise RuntimeError("no 16 free ports in a row")


class Sweeper(threading.Thread):
    """The beat and the worker of the embedded default, reduced to what the walk needs: a sweep a second."""

    def __init__(self):
        super().__init__(daemon=True)
        self.halt = threading.Event()
        self.failures: list[BaseException] = []

    def run(self):
        try:
            while not self.halt.is_set():
                try:
                    reconciler.reconcile_sweep()
                except Exception as exc:  # recorded and shown by the test: a sweep must not fail
                    self.failures.append(exc)
                self.halt.wait(1.0)
        finally:
            connection.close()

    def stop(self):
        self.halt.set()
        self.join(30)


@pytest.fixture
def demo(settings, tmp_path, live_server, monkeypatch):
    run_dir = tmp_path / "run"
    settings.AICP_ORCHESTRATOR = "local"
    settings.AICP_STORAGE_ROOT = tmp_path / "storage"
    settings.AICP_LOCAL_RUN_DIR = run_dir
    settings.AICP_INGEST_URL = live_server.url + "/api/v1/ingest/"
    monkeypatch.setattr(reconcile_task, "delay", lambda task_id: None)  # the sweeper converges instead
    config = DemoConfig(
        var_dir=tmp_path,
        gateway_port_start=free_port_range(),
        # The demo model of `make run` (300 training steps: it answers in words), from the same cache, which is
        # built once per virtual environment (about 40 s) and shared with `make demo-check`.
    )
    factories.accelerator("cpu")  # seeded by a migration; an earlier transactional test may have flushed it
    platform = demo_platform_setup(config, log=lambda *_: None)
    sweeper = Sweeper()
    sweeper.start()
    yield platform, run_dir
    sweeper.stop()
    stop_all(run_dir)
    assert not sweeper.failures, sweeper.failures


def processes_of(run_dir) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(run_dir) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def sign_in_with_a_new_api_key(page, platform, *, dashboard_screenshot: bool = False) -> str:
    """Sign in as the demo tenant's admin and create an API key in the console; returns the key, shown once."""
    login = next(login for login in platform.logins if login.username == "demo")
    sign_in(page, login.username, login.password)
    if dashboard_screenshot:
        screenshot(page, "dashboard")
    page.goto("/api-keys/new/")
    page.fill("input[name=name]", "playground")
    page.click("form.form button[type=submit]")
    api_key = page.input_value("#new-api-key")
    assert api_key.startswith("aicp_sk_")
    return api_key


def test_a_tenant_user_deploys_the_demo_model_chats_with_it_and_exports_the_approved_answer(browser_page, demo):
    platform, run_dir = demo
    page = browser_page
    api_key = sign_in_with_a_new_api_key(page, platform, dashboard_screenshot=True)

    page.goto("/tasks/new/")
    page.fill("input[name=name]", "chat")
    page.select_option("select[name=model]", str(platform.model.pk))
    page.select_option("select[name=compute_pool]", platform.pool.slug)
    page.select_option("select[name=gateway]", platform.gateway.slug)
    page.fill("input[name=compute_units_per_instance]", "1")
    page.click("details.advanced summary")
    page.check("input[name=reflow_enabled]")
    page.locator("#dry-run-result[data-accepted=true]").wait_for()
    page.click("#task-form button.primary")
    page.wait_for_url("**/tasks/*/")
    task = InferenceTask.objects.get(tenant=platform.tenant, name="chat")

    page.locator("#task-status[data-status=running]").wait_for(timeout=RUNNING_WITHIN_S * 1000)
    access_url = page.input_value("#access-url")
    assert access_url == platform.gateway.access_url(task.gateway_port.port)

    page.goto(f"/tasks/{task.pk}/playground/")
    page.fill("#api-key", api_key)
    page.fill("input[name=temperature]", "0")  # greedy: the demo model's answer does not depend on the draw
    page.fill("textarea[name=message]", QUESTION)
    page.click("#send")
    answer = page.locator(".bubble.assistant").last
    page.wait_for_function(ANSWERED, timeout=60_000)
    assert "failed" not in (answer.get_attribute("class") or ""), answer.inner_text()
    assert answer.inner_text().strip()
    screenshot(page, "playground")

    deadline = time.monotonic() + 60
    while True:  # the adapter ships its reflow spool every 2 s
        page.goto("/reflow/")
        if page.locator("#reflow-table tr[data-record-id]").count() or time.monotonic() > deadline:
            break
        time.sleep(1)
    row = page.locator("#reflow-table tr[data-record-id]")
    assert row.count() == 1
    row.locator("button.approve").click()
    page.locator("#reflow-table tr[data-review-status=approved]").wait_for()
    screenshot(page, "reflow-review")
    with page.expect_download() as download:
        page.click("#export-chat")
    lines = download.value.path().read_text().splitlines()
    assert len(lines) == 1
    exported = json.loads(lines[0])
    assert exported["messages"][0] == {"role": "user", "content": QUESTION}
    assert exported["messages"][-1]["role"] == "assistant" and exported["messages"][-1]["content"]

    page.goto(f"/tasks/{task.pk}/")
    page.locator("#latency-charts svg").first.wait_for()
    screenshot(page, "task-detail")
    assert processes_of(run_dir), "the task's engine and adapter run as processes of the run folder"

    page.goto(f"/tasks/{task.pk}/delete/")
    page.click("form.form button[type=submit], form button.danger")
    deadline = time.monotonic() + 60
    while InferenceTask.objects.filter(pk=task.pk).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not InferenceTask.objects.filter(pk=task.pk).exists()
    assert processes_of(run_dir) == []


VLLM_RUNNING_WITHIN_S = 300  # vLLM's CPU runtime starts in 20-30 s idle, far slower beside the suite


def test_a_tenant_user_deploys_the_demo_model_in_high_performance_mode_and_chats_with_vllm(browser_page, demo):
    vllm_python()
    platform, run_dir = demo
    page = browser_page
    api_key = sign_in_with_a_new_api_key(page, platform)

    page.goto("/tasks/new/")
    page.fill("input[name=name]", "fast-chat")
    page.select_option("select[name=model]", str(platform.model.pk))
    page.select_option("select[name=mode]", "high_performance")
    page.select_option("select[name=compute_pool]", platform.pool.slug)
    page.select_option("select[name=gateway]", platform.gateway.slug)
    page.fill("input[name=compute_units_per_instance]", "1")
    page.click("details.advanced summary")
    page.select_option("select[name=sampling_policy]", "locked")
    page.fill("textarea[name=system_prompt]", "You answer in one short sentence.")
    page.locator("#dry-run-result[data-accepted=true]").wait_for()
    screenshot(page, "task-create-high-performance")
    page.click("#task-form button.primary")
    page.wait_for_url("**/tasks/*/")
    task = InferenceTask.objects.get(tenant=platform.tenant, name="fast-chat")
    assert task.mode == "high_performance" and task.runtime_image_version.image == platform.vllm_image

    page.locator("#task-status[data-status=running]").wait_for(timeout=VLLM_RUNNING_WITHIN_S * 1000)
    (instance,) = RunFolder(run_dir, task.pk).load().instances.values()
    engine = " ".join(psutil.Process(instance.engine.pid).cmdline())
    assert "-m serving.vllm_cpu serve" in engine, "the task's engine is vLLM, started from its own environment"

    page.goto(f"/tasks/{task.pk}/playground/")
    page.fill("#api-key", api_key)
    page.fill("textarea[name=message]", QUESTION)
    page.click("#send")
    answer = page.locator(".bubble.assistant").last
    page.wait_for_function(ANSWERED, timeout=120_000)
    assert "failed" not in (answer.get_attribute("class") or ""), answer.inner_text()
    assert answer.inner_text().strip()
    screenshot(page, "playground-high-performance")

    page.goto(f"/tasks/{task.pk}/")
    screenshot(page, "task-detail-high-performance")
    page.goto(f"/tasks/{task.pk}/delete/")
    page.click("form.form button[type=submit], form button.danger")
    deadline = time.monotonic() + 90
    while InferenceTask.objects.filter(pk=task.pk).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not InferenceTask.objects.filter(pk=task.pk).exists()
    assert find_tagged(run_dir) == {}  # every process of the task's run folder
