"""Retention (acceptance 4): the periodic purge deletes each tenant's reflow records older than its limit and
nothing else, and raw request metrics older than theirs; roll-ups keep the history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reflow.models import ReflowRecord
from reflow.services import reflow_ingest, reflow_purge
from telemetry.models import LatencyRollup, RequestMetric
from telemetry.services import metrics_ingest, metrics_purge
from telemetry.tasks import retention_purge
from tests import factories
from tests.telemetry.records import metric, reflow_record

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)


def test_each_tenant_keeps_its_records_for_its_own_number_of_days():
    short = factories.TaskFactory(tenant=factories.TenantFactory(reflow_retention_days=7))
    long = factories.TaskFactory(tenant=factories.TenantFactory(reflow_retention_days=90))
    ages = [timedelta(days=1), timedelta(days=6, hours=23), timedelta(days=7, hours=1), timedelta(days=30),
            timedelta(days=89, hours=23), timedelta(days=91)]  # fmt: skip
    for task in (short, long):
        reflow_ingest(task=task, records=[reflow_record(task, at=NOW - age) for age in ages])
    deleted = reflow_purge(now=NOW)
    assert deleted == 4 + 1  # four of the short-lived tenant, one of the other

    def kept(task) -> list[timedelta]:
        started = ReflowRecord.objects.filter(task_id=task.pk).values_list("started_at", flat=True)
        return sorted(round((NOW - at) / timedelta(hours=1)) for at in started)

    assert kept(short) == [24, 167]
    assert kept(long) == [24, 167, 169, 720, 2159]
    assert reflow_purge(now=NOW) == 0


def test_raw_metrics_go_after_their_retention_and_roll_ups_stay(settings):
    settings.AICP_METRICS_RAW_RETENTION_DAYS = 7
    task = factories.TaskFactory()
    metrics_ingest(task=task, records=[metric(task, at=NOW - timedelta(days=d)) for d in (1, 6.9, 7.1, 20)])
    assert metrics_purge(now=NOW)["raw"] == 2
    assert RequestMetric.objects.count() == 2
    assert sum(LatencyRollup.objects.filter(resolution="day").values_list("requests", flat=True)) == 4


def test_the_periodic_job_purges_both(settings):
    task = factories.TaskFactory(tenant=factories.TenantFactory(reflow_retention_days=1))
    reflow_ingest(task=task, records=[reflow_record(task, at=NOW - timedelta(days=2))])
    settings.AICP_METRICS_RAW_RETENTION_DAYS = 1
    metrics_ingest(task=task, records=[metric(task, at=NOW - timedelta(days=2))])
    result = retention_purge.apply().get()
    assert (result["reflow"], result["raw"]) == (1, 1)
    assert not ReflowRecord.objects.exists() and not RequestMetric.objects.exists()


def test_retention_is_set_per_tenant_by_platform_admins(api_as, platform_admin):
    tenant = factories.TenantFactory()
    client = api_as(platform_admin)
    assert (
        client.patch(f"/api/v1/tenants/{tenant.slug}/", {"reflow_retention_days": 14}, format="json").json()[
            "reflow_retention_days"
        ]
        == 14
    )
    refused = client.patch(f"/api/v1/tenants/{tenant.slug}/", {"reflow_retention_days": 0}, format="json")
    assert refused.status_code == 400
    assert "reflow_retention_days" in refused.json()["fields"]
