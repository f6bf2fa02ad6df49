"""``python -m serving.adapter.capture_worker``: the reflow capture worker, a child process of the adapter.

It reads the frames the adapter appends to ``<spool_dir>/capture/`` (``capture.py`` says why this is a process and
what a frame holds), builds each record (``reflow.build_record``: output text out of the SSE bytes, redaction),
appends the records to the reflow spool ``<spool_dir>/reflow/`` and ships that spool to the control plane
(``spool.Shipper``: batches, at least once, offsets).

Its place in the intake is an ``.offset`` file per segment, committed after the records built from it are written.
A crash in between builds those frames again on the next start: the records carry the same ids, and the control
plane keeps one of each. Segments before the newest are complete (the adapter only ever appends to its newest);
they are deleted once built. The newest is read up to its last complete frame, and wholly once stdin has ended (the
adapter stopped or died: nothing more will be appended), a torn last frame skipped with a warning.

Protocol with the adapter: the first line of stdin is the settings (JSON: ``spool_dir``, ``redact``, ``task_id``,
``ingest`` with ``url``, ``token``, ``batch_size``, ``interval_s``, ``max_backoff_s``); after it, any byte is a
doorbell; the end of stdin means stop. The worker has a process group of its own: a signal to the adapter's group
(as the local orchestrator and a terminal send them) is the adapter's, which closes stdin once it has written its
last captures. Each second with news, one JSON line of running totals goes to stdout:
``{"pid": its pid, "built": n, "failed": n, "shipped": n, "rejected": n}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
from pathlib import Path

import aiohttp

from serving.adapter.capture import FRAME, INTAKE, INTAKE_SUFFIX, MAGIC
from serving.adapter.reflow import build_record
from serving.adapter.spool import Segments, Shipper, json_line, read_offset, write_offset

log = logging.getLogger("serving.adapter.capture_worker")
NICENESS = 10  # below the relay's priority: capture waits for the CPU, callers do not
BUILD_BATCH_BYTES = 4 << 20  # intake bytes built before the records are written and the offset committed


def read_frames(path: Path, offset: int, max_bytes: int) -> tuple[list[tuple[dict, bytes, bytes]], int, int, bool]:
    """Complete frames after ``offset`` up to about ``max_bytes``: (frames, offset after them, file size, corrupt)."""
    frames = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(offset)
        while offset < size and (not frames or offset - frames[0][3] < max_bytes):
            head = f.read(FRAME.size)
            if len(head) < FRAME.size:
                break
            magic, meta_len, body_len, response_len = FRAME.unpack(head)
            if magic != MAGIC:
                return [fr[:3] for fr in frames], offset, size, True
            total = meta_len + body_len + response_len
            data = f.read(total)
            if len(data) < total:
                break
            meta = json.loads(data[:meta_len])
            frames.append((meta, data[meta_len : meta_len + body_len], data[meta_len + body_len :], offset))
            offset += FRAME.size + total
    return [fr[:3] for fr in frames], offset, size, False


class CaptureWorker:
    def __init__(self, settings: dict):
        spool_dir = Path(settings["spool_dir"])
        self.settings = settings
        self.intake_dir = spool_dir / INTAKE
        self.intake_dir.mkdir(parents=True, exist_ok=True)
        self.records = Segments(spool_dir / "reflow")
        self.redact = bool(settings.get("redact", True))
        self.built = self.failed = 0
        self.bell = threading.Event()
        self.final = False  # stdin ended: the adapter appends nothing more

    def listen(self) -> None:
        """The doorbell thread: any byte on stdin wakes the builder; the end of stdin makes this the last pass."""
        fd = sys.stdin.fileno()
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                self.final = True
                self.bell.set()
                return
            self.bell.set()

    def build_loop(self) -> None:
        while True:
            final = self.final  # read before the pass: a pass after the end of stdin sees every frame
            self.bell.clear()
            progressed = self.build_pass(final)
            if not progressed:
                if final:
                    self.records.close_file()
                    return
                self.bell.wait(0.5)

    def build_pass(self, final: bool) -> bool:
        """Build the next run of frames; True when something was done (built, or a finished segment deleted)."""
        names = sorted(p.name for p in self.intake_dir.glob(f"*.{INTAKE_SUFFIX}"))
        for i, name in enumerate(names):
            path = self.intake_dir / name
            offset_path = path.with_name(name + ".offset")
            complete = final or i < len(names) - 1
            frames, end, size, corrupt = read_frames(path, read_offset(offset_path), BUILD_BATCH_BYTES)
            if frames:
                self._build(frames)
                write_offset(offset_path, end)
                return True
            if corrupt or (complete and end < size):
                log.warning("capture intake %s: skipping %d bytes after offset %d (a torn or damaged frame)",
                            path, size - end, end)  # fmt: skip
                complete = True
            if not complete:
                return False
            for p in (path, offset_path):
                p.unlink(missing_ok=True)
            return True
        return False

    def _build(self, frames: list[tuple[dict, bytes, bytes]]) -> None:
        lines = []
        for meta, request_body, response in frames:
            try:
                lines.append(json_line(build_record(meta, request_body, response, self.redact)))
            except Exception:
                self.failed += 1
                log.exception("capture: could not build the record of exchange %s; skipped", meta.get("id"))
        if lines:
            self.records.write("".join(lines).encode())
            self.built += len(lines)

    async def run(self) -> None:
        ingest = self.settings["ingest"]
        connector = aiohttp.TCPConnector(limit=4)
        async with aiohttp.ClientSession(connector=connector) as session:
            pace = {key: ingest[key] for key in ("batch_size", "interval_s", "max_backoff_s") if key in ingest}
            shipper = Shipper(self.records, f"{ingest['url']}reflow/", ingest["token"], self.settings["task_id"],
                              session, **pace)  # fmt: skip
            shipping = asyncio.create_task(shipper.run())
            reporting = asyncio.create_task(self.report(shipper))
            threading.Thread(target=self.listen, name="capture-doorbell", daemon=True).start()
            try:
                await asyncio.to_thread(self.build_loop)
            finally:
                shipping.cancel()
                reporting.cancel()
                self.print_status(shipper)

    async def report(self, shipper: Shipper) -> None:
        last = None
        while True:
            await asyncio.sleep(1.0)
            last = self.print_status(shipper, last)

    def print_status(self, shipper: Shipper, last: dict | None = None) -> dict:
        status = {"pid": os.getpid(), "built": self.built, "failed": self.failed, "shipped": shipper.shipped,
                  "rejected": shipper.rejected}  # fmt: skip
        if status != last:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.write(json.dumps(status) + "\n")
                sys.stdout.flush()
        return status


def main() -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)

    line = sys.stdin.buffer.readline()
    if not line:
        return 0
    worker = CaptureWorker(json.loads(line))
    asyncio.run(worker.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
