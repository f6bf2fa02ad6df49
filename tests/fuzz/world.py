"""The platform the API fuzz runs against: two tenants with something of every kind the API serves.

Seeded through the services (factories only where a service needs files, as for an uploaded model), so that
every row is one the API itself could have written. ``seed()`` returns the tokens the fuzz signs in with and, per
resource, the identifiers of real objects: the fuzz sends those now and then instead of random ones, so that
detail answers (not only 404s) are checked against the schema too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FuzzWorld:
    tenant_admin_token: str
    platform_admin_token: str
    #: Objects the fuzz must not revoke, demote or deactivate, or it would sign itself out mid-run:
    #: ``{"tokens": [ids], "memberships": [ids], "users": [ids]}``.
    protected: dict[str, list[int]]
    #: Resource prefix (``tenants``, ``tasks``...) -> identifiers of real objects, for path parameters.
    identifiers: dict[str, list] = field(default_factory=dict)


def seed() -> FuzzWorld:
    from compute_pools.models import PoolGrant
    from inference_jobs.services import task_create, task_stop
    from reflow.models import ReflowRecord
    from reflow.services import reflow_ingest, reflow_review
    from telemetry.services import engine_load_ingest, metrics_ingest
    from tenancy.choices import Role
    from tenancy.models import AuditEntry, Membership
    from tenancy.services import membership_create, personal_token_create, tenant_api_key_create, user_create
    from tests import factories
    from tests.conftest import make_deployable, member_of
    from tests.telemetry.records import engine_load, metric, reflow_record

    root = factories.PlatformAdminFactory(username="root")
    acme, globex = make_deployable("acme"), make_deployable("globex")
    admin = member_of(acme.tenant, Role.ADMIN, user__username="acme-admin")
    # A user without an e-mail address, as `createsuperuser` or the console may leave one.
    membership_create(
        actor=root, tenant=acme.tenant, user=user_create(actor=root, username="no-mail", email=""), role=Role.VIEWER
    )
    tasks = []
    for world, name in ((acme, "chat"), (acme, "summarise"), (globex, "chat")):
        task = task_create(actor=world.member, **world.task_fields(name=name))
        metrics_ingest(task=task, records=[metric(task), metric(task, status=500, output_tokens=0)])
        reflow_ingest(task=task, records=[reflow_record(task), reflow_record(task)])
        if name == "chat":  # the other task's engines never reported: its engine_load is null
            engine_load_ingest(task=task, records=[engine_load(), engine_load(instance="b:1", requests_running=None)])
        tasks.append(task)
    task_stop(actor=acme.member, task=tasks[1])
    reviewed = ReflowRecord.objects.filter(task_id=tasks[0].pk).first()
    reflow_review(actor=admin, record=reviewed, action="edit", edited_output="Paris is the capital of France.")
    keys = [
        tenant_api_key_create(actor=admin, tenant=acme.tenant, name=name).credential for name in ("prod", "staging")
    ]
    spare_token = personal_token_create(actor=admin, name="spare").credential
    tenant_token = personal_token_create(actor=admin, name="fuzz")
    platform_token = personal_token_create(actor=root, name="fuzz")

    return FuzzWorld(
        tenant_admin_token=tenant_token.plaintext,
        platform_admin_token=platform_token.plaintext,
        protected={
            "tokens": [tenant_token.credential.pk, platform_token.credential.pk],
            "memberships": [Membership.objects.get(user=admin).pk],
            "users": [admin.pk, root.pk],
        },
        identifiers={
            "tenants": [acme.tenant.slug, globex.tenant.slug],
            "memberships": list(Membership.objects.exclude(user=admin).values_list("pk", flat=True)),
            "users": [acme.member.pk, globex.member.pk],
            "tokens": [spare_token.pk],
            "api-keys": [key.pk for key in keys],
            "audit-log": list(AuditEntry.objects.order_by("-pk").values_list("pk", flat=True)[:5]),
            "accelerator-types": ["nvidia-gpu", "cpu"],
            "compute-pools": [acme.pool.slug, globex.pool.slug],
            "pool-grants": list(PoolGrant.objects.values_list("pk", flat=True)),
            "gateways": [acme.gateway.slug, globex.gateway.slug],
            "model-families": ["llama2-7b", "qwen2-72b"],
            "models": [acme.model.pk, globex.model.pk],
            "runtime-images": ["normal-nvidia", "high-performance-nvidia"],
            "tasks": [task.pk for task in tasks],
            "reflow-records": [str(pk) for pk in ReflowRecord.objects.values_list("pk", flat=True)],
        },
    )
