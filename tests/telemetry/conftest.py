"""A task and the adapter that ships its records (with the task's ingest token), for the ingest tests."""

from __future__ import annotations

import pytest

from tests import factories
from tests.telemetry.records import Adapter


@pytest.fixture
def task(db):
    return factories.TaskFactory()


@pytest.fixture
def adapter(task) -> Adapter:
    return Adapter(task.ingest_token, task.pk)
