"""One arranged refusal per admission rule. Each ``arrange`` puts a deployable world just past a rule's
limit and returns the task fields (overrides of ``Deployable.task_fields``) that the rule must refuse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from catalog.choices import ModelStatus
from catalog.models import RuntimeImageVersion
from tests import factories
from tests.conftest import Deployable
from tests.inference_jobs.conftest import seed_tasks


@dataclass(frozen=True)
class Scenario:
    code: str
    arrange: Callable[[Deployable], dict]
    #: Who submits: a tenant member, or a platform admin (who can name pools the tenant cannot see).
    by_platform_admin: bool = False
    #: Django settings the scenario runs under.
    settings: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.code


def _platform_full(d: Deployable) -> dict:
    seed_tasks(500)
    return {}


def _tenant_task_quota(d: Deployable) -> dict:
    d.tenant.max_tasks = 1
    d.tenant.save()
    factories.TaskFactory(tenant=d.tenant, model=d.model, compute_pool=d.pool)
    return {}


def _name_taken(d: Deployable) -> dict:
    factories.TaskFactory(tenant=d.tenant, name="chat", model=d.model, compute_pool=d.pool)
    return {"name": "chat"}


def _model_not_ready(d: Deployable) -> dict:
    return {"model": factories.ModelFactory(tenant=d.tenant, status=ModelStatus.INSPECTING)}


def _normal_mode_encrypted(d: Deployable) -> dict:
    return {"model": factories.ModelFactory(tenant=d.tenant, encrypted=True), "mode": "normal"}


def _normal_mode_compressed(d: Deployable) -> dict:
    return {"model": factories.ModelFactory(tenant=d.tenant, compressed=True), "mode": "normal"}


def _pool_not_granted(d: Deployable) -> dict:
    return {"compute_pool": factories.ComputePoolFactory()}


def _bi_v100_high_performance(d: Deployable) -> dict:
    pool = factories.ComputePoolFactory(accelerator_type=factories.accelerator("iluvatar-bi-v100"))
    factories.PoolGrantFactory(pool=pool, tenant=d.tenant)
    return {"compute_pool": pool, "mode": "high_performance"}


def _no_runtime_image(d: Deployable) -> dict:
    RuntimeImageVersion.objects.filter(image__mode="high_performance", image__vendor="nvidia").delete()
    return {"mode": "high_performance"}


def _no_vllm_runtime(d: Deployable) -> dict:
    return {"mode": "high_performance"}


# The local orchestrator on a machine without vLLM's CPU runtime.
WITHOUT_VLLM = {"AICP_ORCHESTRATOR": "local", "AICP_LOCAL_VLLM_PYTHON": Path("/nonexistent/.venv-vllm/bin/python")}


def _tenant_compute_quota(d: Deployable) -> dict:
    d.tenant.max_compute_units = 3
    d.tenant.save()
    return {"compute_units_per_instance": 4}


def _pool_capacity(d: Deployable) -> dict:
    d.pool.capacity_compute_units = 3
    d.pool.save()
    return {"compute_units_per_instance": 4}


def _pool_grant_share(d: Deployable) -> dict:
    d.pool.grants.filter(tenant=d.tenant).update(max_compute_units=3)
    return {"compute_units_per_instance": 4}


def _gateway_inactive(d: Deployable) -> dict:
    d.gateway.is_active = False
    d.gateway.save()
    return {}


def _gateway_full(d: Deployable) -> dict:
    factories.TaskFactory.create_batch(16, gateway=d.gateway)
    return {}


SCENARIOS = [
    Scenario("platform_task_limit", _platform_full),
    Scenario("tenant_quota_tasks", _tenant_task_quota),
    Scenario("task_name_taken", _name_taken),
    Scenario("model_not_ready", _model_not_ready),
    Scenario("normal_mode_model_unsupported", _normal_mode_encrypted),
    Scenario("normal_mode_model_unsupported", _normal_mode_compressed),
    Scenario("pool_not_granted", _pool_not_granted, by_platform_admin=True),
    Scenario("mode_not_supported_by_pool", _bi_v100_high_performance),
    Scenario("runtime_image_unavailable", _no_runtime_image),
    Scenario("runtime_not_installed", _no_vllm_runtime, settings=WITHOUT_VLLM),
    Scenario("tenant_quota_compute_units", _tenant_compute_quota),
    Scenario("pool_capacity_exceeded", _pool_capacity),
    Scenario("pool_grant_share_exceeded", _pool_grant_share),
    Scenario("gateway_inactive", _gateway_inactive),
    Scenario("gateway_ports_exhausted", _gateway_full),
]
