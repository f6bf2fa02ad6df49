"""The spool and its shipper on their own: offsets, torn lines, rotation, retries on a failing ingest."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web

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
