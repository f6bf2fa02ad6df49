"""Fixtures that make the API-server emulator this test's cluster (registered in ``tests/conftest.py``).

``kube``: an empty cluster but for the gateways' namespace, with the settings of an installation named ``aicp``
pointing at it and Celery eager, so that a write through the API reconciles the task at once.
"""

from __future__ import annotations

import pytest

from controlplane.celery import app as celery_app
from inference_jobs.models import InferenceTask
from inference_jobs.orchestrator.kubernetes.api import reset_client
from tests.conftest import api_client_for
from tests.kube.emulator import KubeEmulator

GATEWAY_NS = "aicp-gateways"


@pytest.fixture(scope="session")
def emulator():
    with KubeEmulator() as emu:
        yield emu


@pytest.fixture
def kube(emulator, settings):
    """The emulator, empty but for the gateways' namespace, as the cluster of an installation named ``aicp``."""
    emulator.reset()
    emulator.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NS}})
    settings.AICP_ORCHESTRATOR = "kubernetes"
    settings.AICP_KUBE_API_URL = emulator.url
    settings.AICP_KUBE_TIMEOUT_S = 1.0
    reset_client()
    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    # Eager, and retries re-run at once (an eager task that propagates its exceptions would not retry).
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = True, False
    yield emulator
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved
    reset_client()


def create_via_api(deployable, capture, **overrides) -> InferenceTask:
    """Create a task through the REST API as the deployable's member; its reconcile runs on commit."""
    client = api_client_for(deployable.member)
    with capture(execute=True):
        response = client.post("/api/v1/tasks/", deployable.api_payload(**overrides), format="json")
    assert response.status_code == 201, response.json()
    return InferenceTask.objects.get(pk=response.json()["id"])
