"""The embedded default (``make run``): the demo platform set-up through the real services, and the supervisor's
start/stop of its children. ``make demo-check`` covers the whole run end to end."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from catalog.models import Model, RuntimeImage, RuntimeImageVersion
from compute_pools.models import ComputePool, PoolGrant
from controlplane.embedded.demo import DemoConfig, demo_platform_setup
from controlplane.embedded.model_cache import ensure_demo_model
from controlplane.embedded.supervisor import Child, Children
from gateways.models import Gateway
from inference_jobs.selectors import newest_runtime_image_version
from inference_jobs.services import task_dry_run
from tenancy.choices import Role
from tenancy.models import AuditEntry, Membership, Tenant, User
from tenancy.services import user_update

TRAIN_STEPS = 1  # the set-up is under test here, not the model's answers: the quickest build that is a model


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One demo model for the whole session, built the way `make run` builds it."""
    cache = tmp_path_factory.mktemp("demo-model-cache")
    ensure_demo_model(cache, train_steps=TRAIN_STEPS, log=lambda line: None)
    return cache


@pytest.fixture
def demo_config(db, settings, tmp_path, model_cache) -> DemoConfig:
    settings.AICP_STORAGE_ROOT = tmp_path / "storage"
    return DemoConfig(
        var_dir=tmp_path / "var", gateway_port_start=28000, model_cache_dir=model_cache, model_train_steps=TRAIN_STEPS
    )


def quiet(line: str) -> None:
    pass


def platform_counts() -> dict[str, int]:
    kinds = (User, Tenant, Membership, ComputePool, PoolGrant, Gateway, RuntimeImage, RuntimeImageVersion, Model)
    return {kind.__name__: kind.objects.count() for kind in (*kinds, AuditEntry)}


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_the_set_up_creates_the_demo_platform(demo_config, settings):
    platform = demo_platform_setup(demo_config, log=quiet)

    admin, demo = User.objects.get(username="admin"), User.objects.get(username="demo")
    assert admin.is_superuser and admin.is_staff
    assert not demo.is_superuser
    assert Membership.objects.get(user=demo, tenant__slug="demo").role == Role.ADMIN
    assert platform.tenant.name == "Demo"
    assert platform.pool.accelerator_type.slug == "cpu" and platform.pool.capacity_compute_units == 8
    assert PoolGrant.objects.filter(pool=platform.pool, tenant=platform.tenant).exists()
    gateway = platform.gateway
    assert (gateway.address, gateway.port_range_start, gateway.port_range_end) == ("127.0.0.1", 28000, 28015)
    assert gateway.port_count == 16
    assert newest_runtime_image_version(mode="normal", vendor="none").version == "0.1.0"

    model = platform.model
    assert (model.tenant.slug, model.name, model.status) == ("demo", "demo-chat", "ready")
    assert model.architecture == "LlamaForCausalLM" and not model.encrypted and not model.compressed
    built = ensure_demo_model(demo_config.model_cache_dir, train_steps=TRAIN_STEPS).path
    assert files_under(Path(settings.AICP_STORAGE_ROOT) / model.storage_path) == files_under(built)


def test_the_credentials_file_holds_the_passwords_readable_by_the_owner_only(demo_config):
    platform = demo_platform_setup(demo_config, log=quiet)

    path = demo_config.credentials_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    passwords = json.loads(path.read_text())
    assert set(passwords) == {"admin", "demo"} and passwords["admin"] != passwords["demo"]
    for login in platform.logins:
        assert login.password == passwords[login.username]
        assert User.objects.get(username=login.username).check_password(login.password)


def test_a_second_set_up_creates_and_changes_nothing(demo_config):
    first = demo_platform_setup(demo_config, log=quiet)
    counts = platform_counts()
    credentials = demo_config.credentials_path.read_bytes()
    credentials_mtime = demo_config.credentials_path.stat().st_mtime_ns

    second = demo_platform_setup(demo_config, log=quiet)

    assert second.created == []
    assert platform_counts() == counts  # the audit log included: not a single write
    assert demo_config.credentials_path.read_bytes() == credentials
    assert demo_config.credentials_path.stat().st_mtime_ns == credentials_mtime
    assert second.logins == first.logins
    assert second.model.pk == first.model.pk


def test_existing_objects_are_left_as_they_are(demo_config):
    """A second set-up with other parameters (another gateway port range) does not touch what exists."""
    demo_platform_setup(demo_config, log=quiet)

    again = demo_platform_setup(replace(demo_config, gateway_port_start=29000), log=quiet)

    assert again.created == []
    assert again.gateway.port_range_start == 28000


def test_a_password_changed_since_the_set_up_is_not_printed(demo_config):
    first = demo_platform_setup(demo_config, log=quiet)
    admin = User.objects.get(username="admin")
    user_update(actor=admin, user=User.objects.get(username="demo"), password="another-secret-42")

    logins = {login.username: login.password for login in demo_platform_setup(demo_config, log=quiet).logins}

    assert logins == {"admin": first.logins[0].password, "demo": None}


def test_a_task_from_the_demo_model_passes_every_admission_rule(demo_config):
    platform = demo_platform_setup(demo_config, log=quiet)

    dry_run = task_dry_run(
        tenant=platform.tenant,
        name="chat",
        model=platform.model,
        mode="normal",
        compute_pool=platform.pool,
        gateway=platform.gateway,
    )

    assert [verdict for verdict in dry_run.result.verdicts if not verdict.accepted] == []
    assert dry_run.result.accepted


def test_the_model_cache_builds_once(model_cache):
    again = ensure_demo_model(model_cache, train_steps=TRAIN_STEPS, log=quiet)

    assert again.build_s is None
    assert (again.path / "config.json").is_file()
    assert [path.name for path in model_cache.iterdir() if path.name.startswith(".building")] == []


# The supervisor's children: real processes, no Django.

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM and starts a grandchild (which shares its process group): stop() must still leave nothing.
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print('up and ' + 'running', flush=True); time.sleep(60)",
]


def wait_for_line(path: Path, text: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def test_stop_ends_every_child_and_what_it_started(tmp_path):
    children = Children(
        [Child("sleeper", SLEEPER, tmp_path / "sleeper.log"), Child("stubborn", STUBBORN, tmp_path / "s.log")]
    )
    children.start(dict(os.environ))
    wait_for_line(tmp_path / "s.log", "up and running")  # not in the header line that names the command
    stubborn = psutil.Process(children.children[1].process.pid)
    everything = [psutil.Process(child.process.pid) for child in children.children] + stubborn.children()
    assert len(everything) == 3
    assert children.first_exited() is None

    started = time.monotonic()
    children.stop(grace_s=1)

    assert time.monotonic() - started < 5
    # A SIGKILLed process ends when the kernel next schedules it: on a busy machine that takes a moment.
    assert [process.pid for process in everything if not ended_within(process, 5)] == []


def ended_within(process: psutil.Process, timeout_s: float) -> bool:
    """Whether ``process`` is gone or a zombie (dead, not yet reaped by its new parent) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_child_that_dies_is_noticed_with_its_log(tmp_path):
    dying = Child("dying", [sys.executable, "-c", "print('cannot start'); raise SystemExit(3)"], tmp_path / "d.log")
    children = Children([Child("sleeper", SLEEPER, tmp_path / "sleeper.log"), dying])
    children.start(dict(os.environ))
    try:
        exited = children.wait_for_exit(poll_s=0.05)
    finally:
        children.stop(grace_s=1)

    assert exited is dying and dying.exit_code == 3
    assert "cannot start" in dying.log_tail()
    assert children.children[0].exit_code is not None  # stopped with the rest


def test_children_run_in_sessions_of_their_own(tmp_path):
    """The terminal's Ctrl-C reaches only the supervisor, which then stops the children in order."""
    children = Children([Child("sleeper", SLEEPER, tmp_path / "sleeper.log")])
    children.start(dict(os.environ))
    try:
        pid = children.children[0].process.pid
        assert os.getsid(pid) == pid != os.getsid(0)
    finally:
        children.stop(grace_s=1)
