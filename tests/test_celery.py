"""The Celery set-up: a real worker runs a task sent through Redis and through the embedded filesystem broker (no
server at all), and the project's app carries the beat schedule. Real brokers, no mocks, no database.

Each round trip uses a Celery app of its own (the project's settings, another broker), so the project's app is
never changed; the embedded worker runs in a thread of the test process with the solo pool.
"""

import os
import runpy
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from celery import Celery, signals
from celery import _state as celery_state
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from controlplane import celery_app
from controlplane import settings as settings_module

REDIS_URL = "redis://127.0.0.1:6379/15"
# Generous for a busy 2-core machine; a passing round trip takes well under a second.
TIMEOUT_S = 20.0
# What start_worker sets in the environment (for forked pool processes); put back after each worker.
WORKER_ENVIRONMENT = ("_MP_FORK_LOGLEVEL_", "_MP_FORK_LOGFILE_", "_MP_FORK_LOGFORMAT_")


@pytest.fixture
def own_broker(monkeypatch):
    """Celery reads these from the environment ahead of any configuration (CI sets CELERY_BROKER_URL); a round
    trip's app must use the broker it is given."""
    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL"):
        monkeypatch.delenv(name, raising=False)


class RoundTrip:
    """A Celery app with the project's settings on the given broker, and a task that records its argument here."""

    def __init__(self, broker_url: str, transport_options: dict):
        self.app = Celery("aicp-test", set_as_current=False, fixups=[])
        self.app.config_from_object("django.conf:settings", namespace="CELERY")
        self.app.conf.update(
            broker_url=broker_url,
            broker_transport_options=transport_options,
            task_always_eager=False,
            beat_schedule={},
            worker_hijack_root_logger=False,
        )
        self.received: list[str] = []
        self.ran = threading.Event()

        @self.app.task(name="tests.test_celery.record", shared=False)
        def record(token):
            self.received.append(token)
            self.ran.set()

        self.record = record

    def send_and_wait(self) -> str:
        """Sends the task through the broker to an embedded worker and waits until the worker has run it."""
        token = uuid.uuid4().hex
        with embedded_worker(self.app):
            self.record.delay(token)
            assert self.ran.wait(TIMEOUT_S), f"the worker did not run the task within {TIMEOUT_S} s"
        assert self.received == [token]
        return token


def _leave_logging_alone(**kwargs):
    """A receiver of ``setup_logging``: with one connected, the worker leaves the session's logging as it is."""


@contextmanager
def embedded_worker(app: Celery):
    """``start_worker`` makes ``app`` the current and default Celery app and sets some environment variables;
    all of that is put back afterwards."""
    current, default = celery_state.get_current_app(), celery_state.default_app
    environment = {name: os.environ.get(name) for name in WORKER_ENVIRONMENT}
    signals.setup_logging.connect(_leave_logging_alone)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=TIMEOUT_S) as worker:
            yield worker
    finally:
        signals.setup_logging.disconnect(_leave_logging_alone)
        current.set_current()
        celery_state.set_default_app(default)
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_task_sent_through_redis_runs_on_a_worker(own_broker):
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (CI starts one): {exc}")

    RoundTrip(REDIS_URL, {}).send_and_wait()

    # The worker bound its queue in Redis database 15: the task went through that server.
    assert client.exists("_kombu.binding.celery")
    client.flushdb()


def test_a_task_sent_through_the_embedded_filesystem_broker_runs_on_a_worker(own_broker, tmp_path):
    for folder in ("messages", "processed", "control"):
        (tmp_path / folder).mkdir()
    options = {
        "data_folder_in": str(tmp_path / "messages"),
        "data_folder_out": str(tmp_path / "messages"),
        "processed_folder": str(tmp_path / "processed"),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0.1,
    }

    RoundTrip("filesystem://localhost//", options).send_and_wait()

    # The message passed through the folder and was taken from it; the queue's binding lies beside it.
    assert list((tmp_path / "messages").iterdir()) == []
    assert (tmp_path / "control" / "celery.exchange").is_file()


def test_the_project_app_has_the_beat_schedule():
    assert celery_app.main == "aicp"
    schedule = celery_app.conf.beat_schedule
    assert set(schedule) == {"reconcile-sweep", "node-inventory", "retention-purge"}
    for name, task, interval in [
        ("reconcile-sweep", "inference_jobs.tasks.reconcile_sweep", settings.AICP_RECONCILE_SWEEP_S),
        ("node-inventory", "compute_pools.tasks.node_inventory", settings.AICP_NODE_INVENTORY_S),
        ("retention-purge", "telemetry.tasks.retention_purge", settings.AICP_RETENTION_PURGE_S),
    ]:
        assert schedule[name]["task"] == task
        assert schedule[name]["schedule"] == interval
        assert schedule[name]["options"] == {"expires": interval}
    if "AICP_RECONCILE_SWEEP_S" not in os.environ:  # the local orchestrator's sweep also restarts dead processes
        sweep_s = settings.AICP_RECONCILE_SWEEP_S
        assert sweep_s == (5 if os.environ.get("AICP_ORCHESTRATOR", "local") == "local" else 60)
    if "AICP_NODE_INVENTORY_S" not in os.environ:
        assert settings.AICP_NODE_INVENTORY_S == 300
    # Reconciles are idempotent: acknowledged once run, run again after a crash, one at a time per process.
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.task_reject_on_worker_lost is True
    assert celery_app.conf.worker_prefetch_multiplier == 1
    assert celery_app.conf.task_ignore_result is True
    assert celery_app.conf.accept_content == ["json"]
    assert celery_app.conf.task_serializer == "json"


def test_the_settings_select_the_filesystem_broker_when_no_broker_url_is_set(monkeypatch):
    if "CELERY_BROKER_URL" not in os.environ:
        assert settings.CELERY_BROKER_URL.startswith("filesystem://")
        assert celery_app.conf.broker_url.startswith("filesystem://")

    # Whatever this environment sets (CI sets Redis), the settings read without CELERY_BROKER_URL pick the
    # embedded broker, with its folders under var/celery/ made ready.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    embedded = runpy.run_path(settings_module.__file__)
    if "CELERY_BROKER_URL" in os.environ:
        pytest.skip("the project's .env sets CELERY_BROKER_URL")
    assert embedded["CELERY_BROKER_URL"].startswith("filesystem://")
    options = embedded["CELERY_BROKER_TRANSPORT_OPTIONS"]
    celery_dir = settings_module.VAR_DIR / "celery"
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        assert Path(options[key]).parent == celery_dir
        assert Path(options[key]).is_dir()
    assert options["data_folder_in"] == options["data_folder_out"]
