"""Usage accounting: tokens and requests per tenant, task and API key by hour; tokens per minute against the
quota; the access log of calls per key for tenant admins."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from telemetry.services import metrics_ingest
from tenancy.services import tenant_api_key_create
from tests import factories
from tests.conftest import member_of
from tests.telemetry.records import iso, metric

pytestmark = pytest.mark.django_db
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture
def tenant(db):
    return factories.TenantFactory(max_tokens_per_minute=5000)


@pytest.fixture
def traffic(tenant):
    admin = member_of(tenant, "admin")
    keys = [tenant_api_key_create(actor=admin, tenant=tenant, name=name).credential for name in ("web", "batch")]
    tasks = [factories.TaskFactory(tenant=tenant, name=name) for name in ("chat", "summarise")]
    records = []
    for i in range(24):
        task, key = tasks[i % 2], keys[(i // 2) % 2]
        at = HOUR + timedelta(minutes=5 * i)  # two hours
        records.append((task, metric(task, at=at, api_key_id=key.pk, input_tokens=10 + i, output_tokens=i,
                                     status=500 if i % 7 == 0 else 200)))  # fmt: skip
    for task in tasks:
        metrics_ingest(task=task, records=[r for t, r in records if t == task])
    return tasks, keys, [r for _, r in records]


def test_usage_by_task_key_and_hour_adds_up_to_the_requests(tenant, traffic, api_as):
    records = traffic[2]
    client = api_as(member_of(tenant, "viewer"))
    params = {"since": iso(HOUR), "until": iso(HOUR + timedelta(hours=2)), "group_by": "task,api_key,hour"}
    body = client.get("/api/v1/usage/", params).json()
    want = Counter()
    for r in records:
        hour = datetime.fromisoformat(r["started_at"]).replace(minute=0, second=0, microsecond=0)
        key = (r["task_id"], r["api_key_id"], iso(hour).replace(".000Z", "Z"))
        want[(*key, "requests")] += 1
        want[(*key, "input_tokens")] += r["input_tokens"]
        want[(*key, "output_tokens")] += r["output_tokens"]
        want[(*key, "errors")] += r["status"] >= 400
    got = Counter()
    for row in body["results"]:
        assert row["tenant"] == tenant.slug
        assert row["task_name"] in ("chat", "summarise") and row["api_key_name"] in ("web", "batch")
        for name in ("requests", "input_tokens", "output_tokens", "errors"):
            got[(row["task"], row["api_key"], row["hour"], name)] += row[name]
    assert got == want
    assert len(body["results"]) == 8  # 2 tasks × 2 keys × 2 hours
    assert body["totals"] == {
        "requests": 24,
        "errors": 4,
        "input_tokens": sum(r["input_tokens"] for r in records),
        "output_tokens": sum(r["output_tokens"] for r in records),
        "total_tokens": sum(r["input_tokens"] + r["output_tokens"] for r in records),
    }
    by_day = client.get("/api/v1/usage/", {**params, "group_by": "day"}).json()["results"]
    days = Counter(datetime.fromisoformat(r["started_at"]).date() for r in records)  # two hours may span midnight
    assert {datetime.fromisoformat(row["day"]).date(): row["requests"] for row in by_day} == days


def test_usage_of_another_tenant_is_never_counted(tenant, traffic, api_as):
    outsider = member_of(factories.TenantFactory(), "admin")
    client = api_as(outsider)
    since = iso(HOUR - timedelta(hours=1))
    for params in (
        {"since": since},
        {"since": since, "tenant": tenant.slug},
        {"since": since, "task": traffic[0][0].pk},
    ):
        body = client.get("/api/v1/usage/", params).json()
        assert (body["totals"]["requests"], body["results"]) == (0, []), params
    own = api_as(member_of(tenant, "viewer")).get("/api/v1/usage/", {"since": since}).json()
    assert own["totals"]["requests"] == 24
    assert client.get(f"/api/v1/tenants/{tenant.slug}/tokens-per-minute/").status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"group_by": "hour,day"}, "group_by"),
        ({"since": "soon"}, "since"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ],
)
def test_bad_usage_queries_name_the_parameter(tenant, api_as, params, field):
    response = api_as(member_of(tenant, "viewer")).get("/api/v1/usage/", params)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_tokens_per_minute_shows_use_against_the_quota(tenant, api_as):
    task = factories.TaskFactory(tenant=tenant)
    now = datetime.now(UTC)
    metrics_ingest(task=task, records=[
        metric(task, at=now - timedelta(seconds=20), input_tokens=100, output_tokens=50),
        metric(task, at=now - timedelta(seconds=40), input_tokens=200, output_tokens=25),
        metric(task, at=now - timedelta(minutes=10), input_tokens=4000, output_tokens=900),
        metric(task, at=now - timedelta(hours=2), input_tokens=9999, output_tokens=9999),
    ])  # fmt: skip
    body = api_as(member_of(tenant, "viewer")).get(f"/api/v1/tenants/{tenant.slug}/tokens-per-minute/").json()
    assert body["tokens_per_minute_quota"] == 5000
    assert body["last_minute"] == 375
    assert body["peak"] == 4900
    assert len(body["series"]) == 60
    assert sum(point["tokens"] for point in body["series"]) == 375 + 4900


def test_the_access_log_lists_calls_per_key_for_tenant_admins_only(tenant, traffic, api_as):
    keys, records = traffic[1], traffic[2]
    admin = member_of(tenant, "admin")
    rows = api_as(admin).get("/api/v1/access-log/", {"api_key": keys[0].pk, "limit": 100}).json()["results"]
    assert {row["api_key_name"] for row in rows} == {"web"}
    assert sum(row["requests"] for row in rows) == sum(r["api_key_id"] == keys[0].pk for r in records)
    first = min(datetime.fromisoformat(r["started_at"]) for r in records if r["api_key_id"] == keys[0].pk)
    assert min(datetime.fromisoformat(row["first_request_at"]) for row in rows) == first
    for role in ("member", "viewer"):
        assert api_as(member_of(tenant, role)).get("/api/v1/access-log/").status_code == 403
