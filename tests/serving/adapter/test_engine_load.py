"""The adapter reads its engine's load off the engine's Prometheus /metrics (vLLM's gauges, with their labels) and
reports it to the ingest API; an engine without /metrics, or one that is slow or broken, makes it report nothing.

The engine and the ingest endpoint are real HTTP servers on this machine (aiohttp in a thread)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from serving.adapter.config import ConfigError, parse_config
from serving.adapter.engine_load import EngineLoadReporter, parse_engine_load
from tests.serving.adapter.conftest import make_config
from tests.serving.adapter.fakes import VLLM_METRICS, FakeIngest, ServerThread, free_port, vllm_metrics

TOKEN = "aicp_it_7_" + "t0ken" * 8

# ---- parsing ---------------------------------------------------------------------------------------------------


def test_queues_are_summed_over_label_sets_and_the_fullest_kv_cache_is_taken():
    assert parse_engine_load(VLLM_METRICS) == {"requests_running": 5, "requests_waiting": 5, "kv_cache_usage": 0.4212}


def test_a_gauge_the_engine_does_not_expose_is_null_and_none_at_all_is_no_snapshot():
    only_usage = "\n".join(line for line in VLLM_METRICS.splitlines() if "kv_cache" in line or "python_gc" in line)
    assert parse_engine_load(only_usage) == {"requests_running": None, "requests_waiting": None,
                                             "kv_cache_usage": 0.4212}  # fmt: skip
    no_gauges = "\n".join(line for line in VLLM_METRICS.splitlines() if "num_requests" not in line and "kv" not in line)
    assert parse_engine_load(no_gauges) is None
    assert parse_engine_load("") is None
    assert parse_engine_load("<html>Not Found</html>") is None


def test_our_engines_unlabelled_gauges_read_the_same():
    text = "vllm:num_requests_running 1\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0.5\n"
    assert parse_engine_load(text) == {"requests_running": 1, "requests_waiting": 0, "kv_cache_usage": 0.5}


def test_our_engines_metrics_page_reads_as_vllms_does():
    """The contract with ``serving.engine``: the same three names, so an idle engine reads as an idle engine."""
    from serving.engine.metrics import EngineMetrics

    body, _ = EngineMetrics().render()
    assert parse_engine_load(body.decode()) == {"requests_running": 0, "requests_waiting": 0, "kv_cache_usage": 0.0}


def test_a_malformed_gauge_line_is_no_snapshot_and_a_malformed_line_elsewhere_does_not_matter():
    line = 'vllm:num_requests_running{engine="1",model_name="chat"} 2.0'
    assert line in VLLM_METRICS
    broken_gauge = VLLM_METRICS.replace(line, line[:-3] + "two")
    assert parse_engine_load(broken_gauge) is None
    broken_elsewhere = VLLM_METRICS.replace('{generation="0"} 18423.0', '{generation="0} oops')
    assert broken_elsewhere != VLLM_METRICS
    assert parse_engine_load(broken_elsewhere)["requests_running"] == 5


def test_odd_values_are_kept_within_what_the_control_plane_stores():
    text = "vllm:num_requests_running -1\nvllm:num_requests_waiting NaN\nvllm:kv_cache_usage_perc 1.0000001\n"
    assert parse_engine_load(text) == {"requests_running": 0, "requests_waiting": None, "kv_cache_usage": 1.0}


# ---- over HTTP -------------------------------------------------------------------------------------------------


class MetricsEngine:
    """An engine's /metrics: vLLM's text, gzipped when the client accepts it (as vLLM's instrumentator does)."""

    def __init__(self):
        self.text = VLLM_METRICS
        self.status = 200
        self.delay = 0.0
        self.scrapes: list[str] = []  # the Accept-Encoding of each scrape

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        self.scrapes.append(request.headers.get("Accept-Encoding", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        resp = web.Response(text=self.text, status=self.status, content_type="text/plain")
        resp.enable_compression()
        return resp


@pytest.fixture
def metrics_engine():
    engine = MetricsEngine()
    server = ServerThread(engine.app).start()
    engine.url = server.url
    yield engine
    server.stop()


@pytest.fixture
def ingest():
    fake = FakeIngest(TOKEN)
    server = ServerThread(fake.app).start()
    fake.url = server.url + "/api/v1/ingest/engine-load/"
    yield fake
    server.stop()


def run_reporter(metrics_url: str, ingest_url: str, body, **options):
    """Run ``body(reporter)`` against a reporter on a fresh session, as the adapter's event loop would."""

    async def go():
        async with aiohttp.ClientSession(
            auto_decompress=False
        ) as session:  # the adapter's session decompresses nothing
            reporter = EngineLoadReporter(session, metrics_url, ingest_url, TOKEN, 7, instance="pod-a:1", **options)
            return await body(reporter)

    return asyncio.run(go())


def test_a_scrape_reads_vllms_gauges_over_http_uncompressed(metrics_engine, ingest):
    before = time.time()
    snapshot = run_reporter(metrics_engine.url + "/metrics", ingest.url, lambda r: r.scrape())
    assert {k: v for k, v in snapshot.items() if k != "observed_at"} == {
        "instance": "pod-a:1", "requests_running": 5, "requests_waiting": 5, "kv_cache_usage": 0.4212,
    }  # fmt: skip
    observed = datetime.fromisoformat(snapshot["observed_at"])
    assert observed.tzinfo == UTC and before - 0.01 <= observed.timestamp() <= time.time()
    assert metrics_engine.scrapes == ["identity"]


def test_snapshots_go_to_ingest_with_the_token_every_interval_and_follow_the_engine(metrics_engine, ingest):
    async def body(reporter):
        task = asyncio.create_task(reporter.run())
        deadline = time.monotonic() + 10
        while reporter.reported < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        metrics_engine.text = vllm_metrics(running=(0, 0), waiting=(0, 0), usage=(0.0, 0.01))
        reported = reporter.reported
        while reporter.reported < reported + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()

    run_reporter(metrics_engine.url + "/metrics", ingest.url, body, interval_s=0.05)
    snapshots = ingest.received["engine-load"]
    assert len(snapshots) >= 4 and all(len(post) == 1 for post in ingest.posts["engine-load"])
    assert snapshots[0]["requests_running"] == 5 and snapshots[0]["instance"] == "pod-a:1"
    last = snapshots[-1]
    assert (last["requests_running"], last["requests_waiting"], last["kv_cache_usage"]) == (0, 0, 0.01)
    assert [s["observed_at"] for s in snapshots] == sorted(s["observed_at"] for s in snapshots)


@pytest.mark.parametrize("trouble", ["404", "500", "slow", "gone", "not prometheus"])
def test_an_engine_without_usable_metrics_reports_nothing(metrics_engine, ingest, trouble, caplog):
    caplog.set_level(logging.INFO, logger="serving.adapter.engine_load")
    url = metrics_engine.url + "/metrics"
    if trouble in ("404", "500"):
        metrics_engine.status = int(trouble)
    elif trouble == "slow":
        metrics_engine.delay = 1.0
    elif trouble == "gone":
        url = f"http://127.0.0.1:{free_port()}/metrics"
    else:
        metrics_engine.text = "<html><body>Hello</body></html>"

    async def body(reporter):
        return [await reporter.report_once() for _ in range(3)]

    started = time.monotonic()
    assert run_reporter(url, ingest.url, body, timeout_s=0.2) == [False, False, False]
    assert time.monotonic() - started < 2.5  # the timeout bounds a slow engine's scrape
    assert ingest.received["engine-load"] == []
    said = [r for r in caplog.records if "reporting nothing" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO  # once, and not as a problem


def test_an_ingest_outage_is_logged_once_and_the_next_snapshots_are_sent(metrics_engine, ingest, caplog):
    caplog.set_level(logging.INFO, logger="serving.adapter.engine_load")
    ingest.token = "another"  # the control plane refuses the adapter's token: 401

    async def body(reporter):
        refused = [await reporter.report_once() for _ in range(3)]
        ingest.token = TOKEN
        return refused, await reporter.report_once()

    refused, accepted = run_reporter(metrics_engine.url + "/metrics", ingest.url, body)
    assert (refused, accepted) == ([False, False, False], True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 401" in warnings[0], warnings
    assert len(ingest.received["engine-load"]) == 1


# ---- in the adapter --------------------------------------------------------------------------------------------


@pytest.fixture
def ingest_base():
    fake = FakeIngest(TOKEN)
    server = ServerThread(fake.app).start()
    fake.url = server.url + "/api/v1/ingest/"
    yield fake
    server.stop()


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_adapter_reports_its_engines_load_to_the_ingest_url_it_is_configured_with(
    engine, start_adapter, ingest_base, tmp_path
):
    engine.metrics_text = VLLM_METRICS
    ingest = {"url": ingest_base.url, "token": TOKEN, "engine_load_interval_s": 0.05}
    start_adapter(ingest=ingest, reflow={"spool_dir": str(tmp_path)})
    wait_for(lambda: len(ingest_base.received["engine-load"]) >= 2)
    snapshot = ingest_base.received["engine-load"][0]
    assert (snapshot["requests_running"], snapshot["requests_waiting"], snapshot["kv_cache_usage"]) == (5, 5, 0.4212)
    assert snapshot["instance"]


def test_an_adapter_whose_engine_has_no_metrics_reports_once_the_engine_has_them(
    engine, start_adapter, ingest_base, tmp_path
):
    start_adapter(ingest={"url": ingest_base.url, "token": TOKEN, "engine_load_interval_s": 0.05},
                  reflow={"spool_dir": str(tmp_path)})  # fmt: skip
    time.sleep(0.3)  # about six rounds against the fake engine's 404
    assert ingest_base.received["engine-load"] == []
    engine.metrics_text = VLLM_METRICS
    wait_for(lambda: len(ingest_base.received["engine-load"]) >= 1)


def test_an_interval_of_0_switches_the_report_off(engine, start_adapter, ingest_base, tmp_path):
    engine.metrics_text = VLLM_METRICS
    start_adapter(ingest={"url": ingest_base.url, "token": TOKEN, "engine_load_interval_s": 0},
                  reflow={"spool_dir": str(tmp_path)})  # fmt: skip
    time.sleep(0.3)
    assert ingest_base.received["engine-load"] == []


def test_the_report_interval_is_checked_with_the_config():
    base = {"url": "http://cp/api/v1/ingest/", "token": "t"}
    assert parse_config(make_config(ingest=base)).ingest.engine_load_interval_s == 5.0
    assert parse_config(make_config(ingest={**base, "engine_load_interval_s": 0})).ingest.engine_load_interval_s == 0
    with pytest.raises(ConfigError, match=r"ingest\.engine_load_interval_s: must be a non-negative number"):
        parse_config(make_config(ingest={**base, "engine_load_interval_s": -1}))
