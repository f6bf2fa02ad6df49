"""The task lifecycle of SPEC: create → pending; stop/start; scale; update image; delete → deleting → gone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.errors import PlatformRuleError
from gateways.models import GatewayPort
from inference_jobs.models import InferenceTask
from inference_jobs.services import (
    task_create,
    task_delete,
    task_delete_finalize,
    task_start,
    task_stop,
    task_update,
)
from tenancy.models import AuditEntry
from tests import factories

pytestmark = pytest.mark.django_db


def test_create_pins_the_newest_runtime_image_version_and_records_why(deployable):
    image = factories.RuntimeImageFactory(mode="normal", vendor="nvidia")
    newest = factories.RuntimeImageVersionFactory(image=image, version="9.0.0")
    task = task_create(actor=deployable.member, **deployable.task_fields())
    assert task.runtime_image_version == newest
    assert task.status == "pending" and task.desired_state == "running"
    event = task.events.get()
    assert event.reason == "Created" and "port 30000" in event.message and event.actor == deployable.member
    entry = AuditEntry.objects.get(action="task.create")
    assert (entry.tenant, entry.actor, entry.object_id) == (deployable.tenant, deployable.member, str(task.pk))
    assert entry.after["name"] == "chat"


def test_a_new_runtime_image_version_changes_no_task_until_update_image_is_asked(deployable, api_as):
    task = task_create(actor=deployable.member, **deployable.task_fields())
    pinned = task.runtime_image_version
    newer = factories.RuntimeImageVersionFactory(image=pinned.image, published_at=pinned.published_at + timedelta(1))

    client = api_as(deployable.member)
    body = client.get(f"/api/v1/tasks/{task.pk}/").json()
    assert (body["runtime_image_version"], body["update_available"]) == (pinned.version, True)
    task.refresh_from_db()
    assert task.runtime_image_version == pinned and task.generation == 1

    updated = client.post(f"/api/v1/tasks/{task.pk}/update-image/")
    assert updated.status_code == 200
    assert updated.json()["runtime_image_version"] == newer.version
    assert updated.json()["status"] == "updating"
    assert updated.json()["update_available"] is False

    again = client.post(f"/api/v1/tasks/{task.pk}/update-image/")
    assert again.status_code == 400 and again.json()["code"] == "runtime_image_up_to_date"


def test_stop_keeps_the_port_and_start_deploys_again(deployable):
    task = task_create(actor=deployable.member, **deployable.task_fields())
    stopped = task_stop(actor=deployable.member, task=task)
    assert (stopped.desired_state, stopped.status) == ("stopped", "stopped")
    assert stopped.gateway_port.port == 30000
    with pytest.raises(PlatformRuleError) as refusal:
        task_stop(actor=deployable.member, task=task)
    assert refusal.value.code == "task_state_conflict"

    started = task_start(actor=deployable.member, task=task)
    assert (started.desired_state, started.status) == ("running", "deploying")
    with pytest.raises(PlatformRuleError):
        task_start(actor=deployable.member, task=task)
    assert [e.reason for e in task.events.order_by("created_at", "id")] == ["Created", "Stopped", "Started"]


def test_delete_holds_the_port_until_finalized_then_frees_it(deployable):
    task = task_create(actor=deployable.member, **deployable.task_fields())
    deleting = task_delete(actor=deployable.member, task=task)
    assert (deleting.desired_state, deleting.status) == ("deleted", "deleting")
    assert task_delete(actor=deployable.member, task=task).generation == deleting.generation  # asking twice: no-op
    with pytest.raises(PlatformRuleError) as refusal:
        task_start(actor=deployable.member, task=task)
    assert refusal.value.code == "task_state_conflict"
    assert GatewayPort.objects.filter(port=30000).exists()

    task_delete_finalize(task=task)
    assert not InferenceTask.objects.filter(pk=task.pk).exists()
    assert not GatewayPort.objects.filter(gateway=deployable.gateway).exists()
    again = task_create(actor=deployable.member, **deployable.task_fields())
    assert again.gateway_port.port == 30000


def test_update_changes_only_the_mutable_spec_and_bumps_generation(deployable):
    task = task_create(actor=deployable.member, **deployable.task_fields())
    updated = task_update(
        actor=deployable.member, task=task, temperature=0.2, sampling_policy="locked", system_prompt="Be brief."
    )
    assert (updated.temperature, updated.sampling_policy, updated.generation) == (0.2, "locked", 2)
    entry = AuditEntry.objects.get(action="task.update")
    assert entry.before == {"generation": 1, "sampling_policy": "defaults", "system_prompt": "", "temperature": 0.7}
    assert entry.after["temperature"] == 0.2
    assert task_update(actor=deployable.member, task=updated, temperature=0.2).generation == 2
