"""Form-encoded requests (``curl -d``) get the same defaults as JSON ones."""

import pytest

pytestmark = pytest.mark.django_db


def test_booleans_left_out_of_form_input_take_their_defaults(deployable, api_as, platform_admin):
    admin = api_as(platform_admin)
    gateway = admin.post(
        "/api/v1/gateways/",
        {"slug": "gw-form", "name": "gw", "address": "10.0.0.1", "port_range_start": 40000, "port_range_end": 40015},
    )
    assert gateway.status_code == 201, gateway.json()
    assert gateway.json()["is_active"] is True

    payload = deployable.api_payload()
    task = api_as(deployable.member).post("/api/v1/tasks/", payload)  # multipart form, no async_batching field
    assert task.status_code == 201, task.json()
    assert task.json()["async_batching"] is True and task.json()["reflow_enabled"] is False

    family = admin.post(
        "/api/v1/model-families/", {"slug": "f", "name": "F", "architecture": "X", "parameter_count": 1}
    )
    assert family.status_code == 201 and family.json()["validated"] is True


def test_an_explicit_false_in_form_input_is_kept(deployable, api_as):
    task = api_as(deployable.member).post("/api/v1/tasks/", {**deployable.api_payload(), "async_batching": "false"})
    assert task.status_code == 201 and task.json()["async_batching"] is False
