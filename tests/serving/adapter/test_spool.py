"""The spool and its shipper on their own: offsets, torn lines, rotation, retries on a failing ingest."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest
from aiohttp import web

from serving.adapter.metrics import AdapterMetrics
from serving.adapter.spool import Shipper, Spool
from tests.serving.adapter.fakes import ServerThread


def wait_written(spool: Spool, lines: int) -> None:
    spool.close()  # close() drains the queue: everything put so far is on disk
    written = sum(p.read_bytes().count(b"\n") for p in spool.dir.glob("*.jsonl"))
    assert written == lines


class FlakyIngest:
    def __init__(self, failures: int):
        self.failures = failures
        self.batches: list[list[dict]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/ingest/reflow/", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if self.failures:
            self.failures -= 1
            return web.json_response({"detail": "busy"}, status=503)
        body = await request.json()
        assert body["task_id"] == 7 and request.headers["Authorization"] == "Bearer tok"
        self.batches.append(body["records"])
        return web.json_response({})


async def ship_until(shipper: Shipper, done) -> None:
    task = asyncio.create_task(shipper.run())
    try:
        for _ in range(400):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("shipping did not finish")
    finally:
        task.cancel()


def test_batches_retry_through_failures_then_segments_are_deleted(tmp_path):
    spool = Spool(tmp_path, segment_bytes=50)  # tiny segments: several rotations
    for i in range(10):
        spool.put({"id": f"r{i}", "n": i})
        time.sleep(0.01)  # separate writes, so the size check can rotate between them
    wait_written(spool, 10)
    assert len(spool.segments()) > 1
    spool.active = None  # the writer is closed: every segment is finished
    ingest = FlakyIngest(failures=3)
    server = ServerThread(ingest.app).start()

    async def run():
        async with aiohttp.ClientSession() as session:
            shipper = Shipper(spool, server.url + "/ingest/reflow/", "tok", 7, session,
                              batch_size=4, interval_s=0.01, max_backoff_s=0.05)  # fmt: skip
            await ship_until(shipper, lambda: not spool.segments())

    try:
        asyncio.run(run())
    finally:
        server.stop()
    ids = [r["id"] for batch in ingest.batches for r in batch]
    assert sorted(ids) == sorted(f"r{i}" for i in range(10))  # each exactly once: no failure after a 2xx
    assert all(len(batch) <= 4 for batch in ingest.batches)
    assert list(tmp_path.iterdir()) == []


def test_a_torn_last_line_is_skipped_and_committed_offsets_are_not_resent(tmp_path):
    (tmp_path / "00000000000000000000001.jsonl").write_bytes(b'{"id":"a"}\n{"id":"b"}\n{"id":"c"')  # killed mid-write
    (tmp_path / "00000000000000000000001.jsonl.offset").write_text("11")  # "a" was acknowledged before the crash
    (tmp_path / "00000000000000000000002.jsonl").write_bytes(b'{"id":"d"}\n')
    spool = Spool(tmp_path)
    ingest = FlakyIngest(failures=0)
    server = ServerThread(ingest.app).start()

    async def run():
        async with aiohttp.ClientSession() as session:
            shipper = Shipper(spool, server.url + "/ingest/reflow/", "tok", 7, session, interval_s=0.01)
            await ship_until(shipper, lambda: not spool.segments())

    try:
        asyncio.run(run())
    finally:
        server.stop()
        spool.close()
    assert [r["id"] for batch in ingest.batches for r in batch] == ["b", "d"]


def test_the_transform_runs_in_the_writer_and_bad_records_are_skipped(tmp_path):
    spool = Spool(tmp_path, transform=lambda item: None if item == "skip" else {"id": item, "x": 1 / len(item)})
    for item in ("a", "skip", "", "b"):  # "" raises ZeroDivisionError in the transform: logged, skipped
        spool.put(item)
    wait_written(spool, 2)
    lines = b"".join(p.read_bytes() for p in tmp_path.glob("*.jsonl")).splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b"]


class ScriptedIngest:
    """Answers each POST from a script of (status, JSON body), then 200; keeps every batch's ids and when it came."""

    def __init__(self, answers: list[tuple[int, object]] | None = None, max_records: int | None = None):
        self.answers = list(answers or [])
        self.max_records = max_records  # more records than this in a batch: 413, as the control plane answers
        self.posts: list[tuple[float, list[str], int]] = []  # (monotonic time, record ids, status answered)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/ingest/metrics/", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        records = (await request.json())["records"]
        if self.max_records is not None and len(records) > self.max_records:
            status, answer = 413, {"code": "ingest_batch_too_large", "max_records": self.max_records}
        else:
            status, answer = self.answers.pop(0) if self.answers else (200, {})
        self.posts.append((time.monotonic(), [r["id"] for r in records], status))
        if isinstance(answer, str):
            return web.Response(status=status, text=answer)
        return web.json_response(answer, status=status)

    def ids(self, status: int | None = None) -> list[str]:
        return [i for _, ids, answered in self.posts if status in (None, answered) for i in ids]


def spool_of(directory, n: int) -> Spool:
    spool = Spool(directory)
    for i in range(n):
        spool.put({"id": f"r{i}"})
    wait_written(spool, n)
    spool.active = None  # the writer is closed: every segment is finished
    return spool


def ship(ingest: ScriptedIngest, spool: Spool, done, **kwargs) -> Shipper:
    server = ServerThread(ingest.app).start()

    async def run():
        async with aiohttp.ClientSession() as session:
            shipper = Shipper(spool, server.url + "/ingest/metrics/", "tok", 7, session, **kwargs)
            await ship_until(shipper, lambda: done(shipper))
            return shipper

    try:
        return asyncio.run(run())
    finally:
        server.stop()


REJECTED = {
    "code": "ingest_records_rejected",
    "accepted": 1,
    "rejected": [
        {"index": 0, "id": "r0", "errors": {"e2e_ms": ["A valid number is required."]}},
        {"index": 2, "id": None, "errors": {"id": ["This field is required."]}},
    ],
}


def test_a_422_with_rejected_records_commits_the_batch_and_counts_them(tmp_path, caplog):
    metrics = AdapterMetrics()
    spool = spool_of(tmp_path, 5)
    ingest = ScriptedIngest([(422, REJECTED)])
    with caplog.at_level(logging.WARNING, logger="serving.adapter.spool"):
        shipper = ship(ingest, spool, lambda s: not spool.segments(), batch_size=3, interval_s=0.01,
                       max_backoff_s=0.05, on_rejected=metrics.ingest_rejected.labels("metrics").inc)  # fmt: skip
    assert [ids for _, ids, _ in ingest.posts] == [["r0", "r1", "r2"], ["r3", "r4"]]  # the first batch is not re-sent
    assert [status for _, _, status in ingest.posts] == [422, 200]
    assert metrics.registry.get_sample_value("aicp_adapter_ingest_rejected_total", {"spool": "metrics"}) == 2
    assert (shipper.shipped, shipper.rejected) == (3, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "refused 2" in warnings[0] and "A valid number is required." in warnings[0], warnings


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (422, {"code": "invalid", "detail": "task_id: required"}),  # a 422 of another kind
        (422, "<html>unprocessable</html>"),  # not JSON
        (500, {"code": "ingest_records_rejected", "rejected": []}),  # the code counts only on a 422
    ],
)
def test_other_failures_are_retried(tmp_path, status, answer):
    rejected: list[int] = []
    spool = spool_of(tmp_path, 2)
    ingest = ScriptedIngest([(status, answer)])
    ship(ingest, spool, lambda s: not spool.segments(), batch_size=5, interval_s=0.01, max_backoff_s=0.05,
         on_rejected=rejected.append)  # fmt: skip
    assert [(ids, answered) for _, ids, answered in ingest.posts] == [(["r0", "r1"], status), (["r0", "r1"], 200)]
    assert rejected == []


def test_a_413_halves_the_batch_and_resends_at_once(tmp_path):
    spool = spool_of(tmp_path, 8)
    ingest = ScriptedIngest(max_records=4)
    # A failure would back off for min(max_backoff_s, interval_s * 2) = 2 s: far slower than an immediate retry.
    shipper = ship(ingest, spool, lambda s: not spool.segments(), batch_size=8, interval_s=1.0, max_backoff_s=10)
    assert [(len(ids), status) for _, ids, status in ingest.posts] == [(8, 413), (4, 200), (4, 200)]
    assert ingest.ids(200) == [f"r{i}" for i in range(8)]
    assert ingest.posts[1][0] - ingest.posts[0][0] < 0.5
    assert shipper.batch_size == 4


def test_a_413_for_a_single_record_backs_off_instead_of_spinning(tmp_path):
    spool = spool_of(tmp_path, 2)
    ingest = ScriptedIngest(max_records=0)  # refuses everything
    shipper = ship(ingest, spool, lambda s: len(ingest.posts) >= 3, batch_size=4, interval_s=0.05, max_backoff_s=0.1)
    assert [(len(ids), status) for _, ids, status in ingest.posts[:3]] == [(2, 413), (1, 413), (1, 413)]
    assert shipper.batch_size == 1
    times = [t for t, _, _ in ingest.posts]
    assert times[2] - times[1] >= 0.09  # the 413 for one record waited for the backoff (0.1 s) before a retry
    assert len(spool.segments()) == 1  # nothing committed
