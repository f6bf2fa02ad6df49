"""Durable, at-least-once delivery of records (reflow captures, per-request metrics) to the control plane.

Layout of a spool directory::

    00001763750000123456789.jsonl          one segment: append-only JSON lines, one record per line
    00001763750000123456789.jsonl.offset   bytes of that segment the ingest endpoint has acknowledged

* The request path only calls ``Spool.put`` (a non-blocking queue put, ~1 µs). A writer *thread* drains the
  queue, turns items into records (``transform``: e.g. extract the streamed text, redact), and appends them
  to the active segment. The segment rotates by size or age; a restart always starts a new segment.
* ``Shipper`` (an asyncio task) reads complete lines after the committed offset, POSTs them as
  ``{"task_id": .., "records": [..]}`` with ``Authorization: Bearer <token>`` and, once the batch is
  delivered, commits the new offset (write-then-rename, so a crash leaves the old or the new offset, never a
  torn one). A crash between the POST and the commit resends that batch: delivery is at least once, and every
  record carries an ``id`` so the receiver deduplicates. The answers:

  - any 2xx: the whole batch is delivered.
  - 422 with a JSON body ``{"code": "ingest_records_rejected", "rejected": [{"index": 3, "id": "..",
    "errors": {..}}, ..]}``: the receiver stored the valid records and refused the malformed ones, which no
    resend can fix. The batch counts as delivered (the offset is committed), one warning names how many were
    refused and the first one's errors, and ``on_rejected(count)`` is called
    (``aicp_adapter_ingest_rejected_total{spool}``).
  - 413: the batch holds more records than the receiver accepts (it takes at most 1000). The batch size is
    halved (from the size of the refused batch) and the smaller batch is sent at once, without backing off;
    the smaller size is kept. A 413 for a single record is retried like any other failure.
  - anything else (another 422 included) or a connection error: retried with exponential backoff (capped);
    records keep spooling meanwhile, bounded only by the disk.
* A segment that is no longer active and fully acknowledged is deleted. A torn last line (the process was
  killed mid-write) of an inactive segment is skipped; such a record was never acknowledged to anyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
_STOP = object()


class Segments:
    """An append-only log cut into segment files (``<time ns>.<suffix>``), rotated by size or age.

    One writer appends; readers (``Shipper``, the capture worker) go through ``segments()`` in name order and keep
    their own ``.offset`` files. ``active`` names the segment the writer appends to; a restart starts a new one.
    """

    def __init__(self, directory: str | Path, segment_bytes: int = 8 << 20, segment_age_s: float = 300.0,
                 suffix: str = "jsonl"):  # fmt: skip
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self.suffix = suffix
        self.active: str | None = None  # name of the segment the writer appends to
        self._file = None
        self._opened_at = 0.0
        self._last_name = 0

    def segments(self) -> list[str]:
        return sorted(p.name for p in self.dir.glob(f"*.{self.suffix}"))

    def write(self, data: bytes) -> None:
        if self._file is None or self._file.tell() >= self.segment_bytes or self._too_old():
            self._rotate()
        self._file.write(data)
        self._file.flush()  # into the OS page cache: survives a killed process (not a power cut)

    def close_file(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def _too_old(self) -> bool:
        return time.monotonic() - self._opened_at > self.segment_age_s

    def _rotate(self) -> None:
        self.close_file()
        name_ns = max(time.time_ns(), self._last_name + 1)
        self._last_name = name_ns
        name = f"{name_ns:023d}.{self.suffix}"
        self._file = open(self.dir / name, "ab")  # noqa: SIM115 - kept open across writes on purpose
        self._opened_at = time.monotonic()
        self.active = name


class Spool(Segments):
    """Segments of JSON lines fed from a queue: ``put`` never blocks; a writer thread transforms and appends."""

    def __init__(
        self,
        directory: str | Path,
        transform: Callable[[Any], dict | None] | None = None,
        segment_bytes: int = 8 << 20,
        segment_age_s: float = 300.0,
        max_queue: int = 100_000,
        on_drop: Callable[[], Any] | None = None,
    ):
        super().__init__(directory, segment_bytes, segment_age_s)
        self.transform = transform
        self.dropped = 0  # items refused because the queue was full (the caller is never blocked)
        self._on_drop = on_drop
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name=f"spool-{self.dir.name}", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self._on_drop:
                self._on_drop()

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued so far, then stop the writer thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for item in batch:
                if item is _STOP:
                    stop = True
                    continue
                try:
                    record = self.transform(item) if self.transform else item
                    if record is not None:
                        lines.append(json_line(record))
                except Exception:
                    log.exception("spool %s: could not serialise a record; skipped", self.dir)
            if lines:
                try:
                    self.write("".join(lines).encode())
                except OSError:
                    log.exception("spool %s: write failed; %d records lost", self.dir, len(lines))
        self.close_file()


def json_line(record: dict) -> str:
    """One record as a spool line: compact JSON, text as UTF-8 (no escapes), a newline."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


class Shipper:
    """Sends a spool's records to ``url`` in batches, forever; see the module docstring for the contract."""

    def __init__(self, spool: Spool, url: str, token: str, task_id: int, session: aiohttp.ClientSession, *,
                 batch_size: int = 200, interval_s: float = 2.0, max_backoff_s: float = 30.0,
                 max_batch_bytes: int = 8 << 20, on_rejected: Callable[[int], Any] | None = None):  # fmt: skip
        self.spool, self.url, self.task_id, self.session = spool, url, task_id, session
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.batch_size, self.interval_s, self.max_backoff_s = max(1, batch_size), interval_s, max_backoff_s
        self.max_batch_bytes = max_batch_bytes  # a batch of large records stops short of the ingest's body limit
        self.shipped = 0  # records the receiver stored
        self.rejected = 0  # records it refused as malformed (422 ingest_records_rejected), never resent
        self._on_rejected = on_rejected

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                progressed = await self.ship_once()
                failures = 0
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failures += 1
                delay = min(self.max_backoff_s, self.interval_s * 2 ** min(failures, 16))
                log.warning("ingest %s unavailable (%s); retrying in %.1fs", self.url, exc, delay)
                await asyncio.sleep(delay)
                continue
            if not progressed:
                await asyncio.sleep(self.interval_s)

    async def ship_once(self) -> bool:
        """Send one batch (or delete finished segments); True when something was done."""
        for name in self.spool.segments():
            path = self.spool.dir / name
            offset_path = path.with_name(name + ".offset")
            active = name == self.spool.active  # read before the size: an inactive segment never grows
            offset = read_offset(offset_path)
            lines, end, size = await asyncio.to_thread(_read_lines, path, offset, self.batch_size, self.max_batch_bytes)
            if lines:
                try:
                    rejected = await self._post(lines)
                except aiohttp.ClientResponseError as exc:
                    if exc.status != 413 or len(lines) == 1:
                        raise
                    self.batch_size = len(lines) // 2  # len(lines) <= batch_size: at least halved, never below 1
                    log.warning("ingest %s: a batch of %d records is too large (413); sending %d at a time",
                                self.url, len(lines), self.batch_size)  # fmt: skip
                    return True  # progress of a kind: send the smaller batch now, without backing off
                await asyncio.to_thread(write_offset, offset_path, end)
                self.shipped += len(lines) - rejected
                self.rejected += rejected
                return True
            if not active:
                if end < size:
                    log.warning("spool %s: skipping %d bytes of a torn last line", path, size - end)
                await asyncio.to_thread(_delete, path, offset_path)
        return False

    async def _post(self, lines: list[bytes]) -> int:
        """POST one batch; returns how many of its records the receiver refused as malformed (the rest are stored).

        Raises ``aiohttp.ClientResponseError`` when the batch was not delivered (the caller retries it).
        """
        body = b'{"task_id":%d,"records":[%b]}' % (self.task_id, b",".join(lines))
        timeout = aiohttp.ClientTimeout(total=30)
        async with self.session.post(self.url, data=body, headers=self.headers, timeout=timeout) as resp:
            if resp.status // 100 == 2:
                return 0
            data = await resp.read()
            refused = _rejections(data) if resp.status == 422 else None
            if refused is None:
                text = data[:200].decode(errors="replace")
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=text)
        count = min(len(refused), len(lines))
        first = refused[0] if refused and isinstance(refused[0], dict) else {}
        log.warning("ingest %s stored a batch of %d records but refused %d as malformed (not resent); "
                    "the first (index %s, id %s): %s", self.url, len(lines), count, first.get("index"),
                    first.get("id"), json.dumps(first.get("errors"), ensure_ascii=False)[:500])  # fmt: skip
        if count and self._on_rejected:
            self._on_rejected(count)
        return count


def _rejections(data: bytes) -> list | None:
    """The ``rejected`` list of a 422 ``ingest_records_rejected`` answer; None for any other 422 body."""
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("code") != "ingest_records_rejected":
        return None
    rejected = answer.get("rejected")
    return rejected if isinstance(rejected, list) else []


def read_offset(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_offset(path: Path, offset: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, path)


def _read_lines(path: Path, offset: int, limit: int, max_bytes: int = 8 << 20) -> tuple[list[bytes], int, int]:
    """Up to ``limit`` complete lines after ``offset``, and fewer once they hold ``max_bytes`` (one line at least):
    (lines without newline, offset after them, file size)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            lines, held = [], 0
            while len(lines) < limit and held < max_bytes:
                line = f.readline()
                if not line.endswith(b"\n") or (lines and held + len(line) > max_bytes):
                    break
                offset += len(line)
                if line.strip():
                    lines.append(line.rstrip(b"\n"))
                    held += len(line)
            return lines, offset, size
    except FileNotFoundError:
        return [], offset, offset


def _delete(path: Path, offset_path: Path) -> None:
    for p in (path, offset_path):
        p.unlink(missing_ok=True)
