"""Latency, throughput and goodput per task (acceptance 2): what the API computes from stored rows equals what
this test computes on its own from the same records, with SPEC's definitions (TPOT = (E2E − TTFT) / (output
tokens − 1); goodput = requests per second meeting the task's TTFT and TPOT targets)."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from telemetry.models import LatencyRollup
from tests import factories
from tests.conftest import member_of
from tests.telemetry.records import Adapter, iso, metric

pytestmark = pytest.mark.django_db

TTFT_TARGET, TPOT_TARGET = 400, 40
# Half past an hour that has ended: the roll-ups' widened window [.., NOW's next hour) lies in the past.
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
GAMMA = (1 + 0.01) / (1 - 0.01)


def traffic(task, count: int, since: datetime, span: timedelta, seed: int = 7) -> list[dict]:
    """Requests as an adapter measures them: streamed or not, some failing, some of a single token."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        at = since + span * rng.random()
        out = rng.choice([1, 2, 5, 40, 120])
        ttft = rng.lognormvariate(math.log(250), 0.6)
        gaps = [rng.lognormvariate(math.log(25), 0.4) for _ in range(out - 1)]
        e2e = ttft + sum(gaps)
        stream = rng.random() < 0.8
        status = 200 if rng.random() < 0.9 else rng.choice([400, 500, 503])
        tpot = (e2e - ttft) / (out - 1) if stream and out > 1 else None
        hist = {}
        for gap in gaps if stream else []:
            key = str(math.ceil(math.log(gap) / math.log(GAMMA)))
            hist[key] = hist.get(key, 0) + 1
        records.append(metric(
            task, at=at, ttft_ms=round(ttft, 3) if stream else None, tpot_ms=None if tpot is None else round(tpot, 3),
            e2e_ms=round(e2e, 3), itl_hist=hist or None, chunks=out, input_tokens=rng.randint(5, 500),
            output_tokens=out, status=status, stream=stream, api_key_id=rng.choice([12, 13]),
            _gaps=gaps if stream else [],
        ))  # fmt: skip
    return records


def send(task, records) -> None:
    adapter = Adapter(task.ingest_token, task.pk)
    for start in range(0, len(records), 500):
        batch = [{k: v for k, v in r.items() if k != "_gaps"} for r in records[start : start + 500]]
        assert adapter.post("metrics", batch).status_code == 200


def is_good(r: dict) -> bool:
    if r["status"] >= 400:
        return False
    if r["ttft_ms"] is None:
        return r["e2e_ms"] <= TTFT_TARGET + TPOT_TARGET * max(0, r["output_tokens"] - 1)
    return r["ttft_ms"] <= TTFT_TARGET and (r["tpot_ms"] is None or r["tpot_ms"] <= TPOT_TARGET)


def exact(values: list[float]) -> dict:
    """numpy.percentile's default (linear) through the standard library's inclusive quantiles."""
    if len(values) == 1:
        return {"p50": values[0], "p90": values[0], "p99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98]}


def nearest_rank(values: list[float]) -> dict:
    ordered = sorted(values)
    return {f"p{round(q * 100)}": ordered[max(1, math.ceil(q * len(ordered))) - 1] for q in (0.5, 0.9, 0.99)}


def expected(records: list[dict], seconds: float, percentiles) -> dict:
    ok = [r for r in records if r["status"] < 400]
    good = sum(is_good(r) for r in records)
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "good": good,
        "output_tokens": sum(r["output_tokens"] for r in records),
        "goodput_per_s": good / seconds,
        "requests_per_s": len(records) / seconds,
        "ttft_ms": percentiles([r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]),
        "tpot_ms": percentiles([r["tpot_ms"] for r in ok if r["tpot_ms"] is not None]),
        "e2e_ms": percentiles([r["e2e_ms"] for r in ok]),
        "itl_ms": nearest_rank([gap for r in ok for gap in r["_gaps"]]),
    }


@pytest.fixture
def task(db):
    return factories.TaskFactory(ttft_slo_ms=TTFT_TARGET, tpot_slo_ms=TPOT_TARGET)


@pytest.fixture
def client(task, api_as):
    return api_as(member_of(task.tenant, "viewer"))


def latency(client, task, **params):
    response = client.get(f"/api/v1/tasks/{task.pk}/latency/", params)
    assert response.status_code == 200, response.content
    return response.json()


def assert_matches(point: dict, want: dict, *, rel: float) -> None:
    for name in ("requests", "errors", "good", "output_tokens"):
        assert point[name] == want[name], name
    assert point["goodput_per_s"] == pytest.approx(want["goodput_per_s"], rel=1e-5)
    assert point["requests_per_s"] == pytest.approx(want["requests_per_s"], rel=1e-5)
    for metric_name in ("ttft_ms", "tpot_ms", "e2e_ms"):
        for label, value in want[metric_name].items():
            assert point[metric_name][label] == pytest.approx(value, rel=rel, abs=5e-4), (metric_name, label)
    for label, value in want["itl_ms"].items():  # ITL: from the adapter's binned gaps, within 1 % always
        assert point["itl_ms"][label] == pytest.approx(value, rel=0.0101), ("itl_ms", label)


def test_exact_percentiles_and_goodput_of_a_recent_window_equal_an_independent_computation(task, client):
    since = NOW - timedelta(hours=1)
    records = traffic(task, 1200, since, timedelta(hours=1))
    send(task, records)
    report = latency(client, task, since=iso(since), until=iso(NOW), step=900)
    assert (report["source"], report["relative_error"], report["step_s"]) == ("raw", 0.0, 900)
    assert report["targets"] == {"ttft_ms": TTFT_TARGET, "tpot_ms": TPOT_TARGET}
    assert_matches(report["summary"], expected(records, 3600, exact), rel=0)
    assert len(report["series"]) == 4
    for point in report["series"]:
        start = datetime.fromisoformat(point["start"])
        inside = [
            r for r in records if start <= datetime.fromisoformat(r["started_at"]) < start + timedelta(minutes=15)
        ]
        assert_matches(point, expected(inside, 900, exact), rel=0)


def test_roll_ups_answer_within_one_percent_with_exact_counts(task, client):
    since = NOW - timedelta(hours=6)
    records = traffic(task, 1500, since, timedelta(hours=6), seed=11)
    send(task, records)
    report = latency(client, task, since=iso(since), until=iso(NOW), step=3600, source="rollups")
    assert (report["source"], report["relative_error"]) == ("rollups", 0.01)
    # Roll-ups cover whole hours: the window widens to the hours it touches.
    assert report["since"] == iso(since.replace(minute=0)).replace(".000Z", "Z")
    covered = (NOW.replace(minute=0) + timedelta(hours=1) - since.replace(minute=0)).total_seconds()
    assert_matches(report["summary"], expected(records, covered, nearest_rank), rel=0.0101)


def test_a_month_reads_day_rows_and_agrees_with_hour_rows(task, client, django_assert_max_num_queries):
    since = NOW - timedelta(days=30)
    records = traffic(task, 3000, since, timedelta(days=30), seed=3)
    send(task, records)
    with django_assert_max_num_queries(12):
        daily = latency(client, task, since=iso(since), until=iso(NOW))
    assert (daily["source"], daily["step_s"]) == ("rollups", 86400)
    assert len(daily["series"]) == 31  # a partial first day, 29 whole days, a partial last day
    hourly = latency(client, task, since=iso(since), until=iso(NOW), step=21600, source="rollups")
    assert daily["summary"] == hourly["summary"]
    assert sum(point["requests"] for point in daily["series"]) == len(records)
    assert LatencyRollup.objects.filter(task_id=task.pk, resolution="day").count() == 31
    seconds = (datetime.fromisoformat(daily["until"]) - datetime.fromisoformat(daily["since"])).total_seconds()
    assert_matches(daily["summary"], expected(records, seconds, nearest_rank), rel=0.0101)


def test_goodput_keeps_the_targets_in_force_when_requests_were_served(task, client, api_as):
    since = NOW - timedelta(minutes=30)
    slow = [metric(task, at=since + timedelta(minutes=1), ttft_ms=600.0, tpot_ms=20.0, e2e_ms=800.0)]
    send(task, slow)
    assert latency(client, task, since=iso(since), until=iso(NOW))["summary"]["good"] == 0
    member = member_of(task.tenant)
    assert api_as(member).patch(f"/api/v1/tasks/{task.pk}/", {"ttft_slo_ms": 1000}, format="json").status_code == 200
    send(task, [metric(task, at=since + timedelta(minutes=2), ttft_ms=600.0, tpot_ms=20.0, e2e_ms=800.0)])
    report = latency(client, task, since=iso(since), until=iso(NOW))
    assert (report["summary"]["requests"], report["summary"]["good"]) == (2, 1)
    assert report["targets"]["ttft_ms"] == 1000


def test_an_empty_window_has_no_percentiles(task, client):
    report = latency(client, task)
    assert report["summary"]["requests"] == 0
    assert report["summary"]["ttft_ms"] == {"p50": None, "p90": None, "p99": None}
    assert report["summary"]["good_ratio"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"step": 7}, "step"),
        ({"source": "magic"}, "source"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z", "source": "raw"}, "source"),
        ({"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-30T00:00:00Z", "step": 60}, "step"),
    ],
)
def test_a_window_the_api_cannot_answer_is_a_400_naming_the_parameter(task, client, params, field):
    response = client.get(f"/api/v1/tasks/{task.pk}/latency/", params)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_another_tenants_task_latency_is_a_404(task, api_as):
    outsider = member_of(factories.TenantFactory(), "admin")
    response = api_as(outsider).get(f"/api/v1/tasks/{task.pk}/latency/")
    assert response.status_code == 404
