"""Reflow capture, the adapter's half: hand each captured exchange to disk and to a separate process, at once.

Why a separate process. Building a reflow record means parsing the request the engine got and the SSE bytes it
sent back, then running the redaction patterns over every string: about 5 ms of CPU per MiB for the JSON and more
for the patterns. In a thread of the adapter that CPU holds the GIL, so with 16 callers sending 1 MiB prompts the
event loop that relays every other caller's stream stalled for up to a second. A process of its own cannot stall
it. It runs at a lower priority (nice 10), so that on a busy pod the relay gets the CPU first, and it redacts
before anything is shipped: personal data still never leaves the pod unredacted.

What the request path does (``Capture.put``, on the event loop): a length check and a queue append. It queues bytes
it already holds (the body it sent the engine, the chunks it relayed), no copies, no parsing.

A writer thread appends each exchange as one frame to the intake log ``<spool_dir>/capture/*.frames`` (file writes
release the GIL) and rings the worker. Frame: ``FRAME`` header (magic, then the byte lengths of the three parts),
the metadata as JSON, the request body, the response bytes. The worker (``capture_worker.py``) turns frames into
records in ``<spool_dir>/reflow/``, ships them, and keeps its place in ``.offset`` files; see there.

Bounds, and what happens when capture falls behind. Capture never makes the caller wait and never grows without
bound; an exchange it cannot keep is dropped and counted, ``aicp_adapter_reflow_dropped_total{reason}``, with a
warning in the log at most every 10 s:

* ``memory``: the exchanges queued for the writer thread hold more than ``max_pending_bytes`` (default 32 MiB; the
  thread writes to the page cache, so this fills only when the disk stalls);
* ``backlog``: the intake log holds more than ``max_backlog_bytes`` (default 1 GiB) that the worker has not built
  yet. A burst larger than the worker's pace waits on disk instead: every captured record still arrives, later.

``aicp_adapter_reflow_backlog_bytes`` is that backlog. When the worker exits without being asked (a crash), it is
started again after a second and goes on from its offsets; nothing written to the intake is lost.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.adapter.spool import Segments, read_offset

log = logging.getLogger(__name__)

FRAME = struct.Struct("<4sIII")  # magic, then bytes of: metadata JSON, request body, response
MAGIC = b"RFL1"
INTAKE = "capture"  # the intake log's folder under the spool folder
INTAKE_SUFFIX = "frames"
_RESCAN_S = 0.25  # how often the writer re-reads the backlog from the intake folder
_WARN_EVERY_S = 10.0
_RESTART_DELAY_S = 1.0


def frame(meta: dict, request_body: bytes, response: bytes) -> bytes:
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    head = FRAME.pack(MAGIC, len(encoded), len(request_body), len(response))
    return b"".join((head, encoded, request_body, response))


def backlog_bytes(intake_dir: Path) -> int:
    """Bytes of the intake log the worker has not built yet: segment sizes minus the offsets it committed."""
    total = 0
    for entry in os.scandir(intake_dir):
        if entry.name.endswith("." + INTAKE_SUFFIX):
            with contextlib.suppress(FileNotFoundError):  # the worker deleted it meanwhile
                total += entry.stat().st_size - read_offset(Path(entry.path + ".offset"))
    return max(total, 0)


class Capture:
    """The intake of reflow captures: ``put`` from the event loop, a writer thread, the worker process."""

    def __init__(self, spool_dir: str | Path, worker_settings: dict, *, max_pending_bytes: int = 32 << 20,
                 max_backlog_bytes: int = 1 << 30, on_drop: Callable[[str], Any] | None = None,
                 on_status: Callable[[dict], Any] | None = None, segment_bytes: int = 64 << 20):  # fmt: skip
        self.intake = Segments(Path(spool_dir) / INTAKE, segment_bytes=segment_bytes, suffix=INTAKE_SUFFIX)
        self.max_pending_bytes, self.max_backlog_bytes = max_pending_bytes, max_backlog_bytes
        self.pending_bytes = 0  # bytes queued for the writer thread
        self.backlog = backlog_bytes(self.intake.dir)  # intake bytes not built yet (an estimate between scans)
        self.dropped: collections.Counter[str] = collections.Counter()
        self._on_drop, self._last_warning = on_drop, 0.0
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._scanned_at = time.monotonic()
        self.worker = WorkerProcess(worker_settings, on_status)
        self._writer = threading.Thread(target=self._write_loop, name="capture-writer", daemon=True)
        self._writer.start()

    def put(self, meta: dict, request_body: bytes, response: list[bytes]) -> bool:
        """Queue one exchange (never blocks); False when it was dropped instead."""
        size = len(request_body) + sum(map(len, response))
        with self._cond:
            if self.pending_bytes + size > self.max_pending_bytes:
                full = True
            else:
                full = False
                self.pending_bytes += size
                self._queue.append((meta, request_body, response, size))
                self._cond.notify()
        if full:
            self._drop("memory")
        return not full

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then let the worker build everything in the intake and exit."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._writer.join(timeout)
        self.intake.close_file()
        self.worker.stop(timeout)

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                meta, request_body, response, size = self._queue.popleft()
            try:
                if self._backlog() + size > self.max_backlog_bytes:
                    self._drop("backlog")
                else:
                    data = frame(meta, request_body, b"".join(response))
                    self.intake.write(data)
                    self.backlog += len(data)
                    self.worker.ring()
            except Exception:
                log.exception("capture: could not write an exchange to %s; it is lost", self.intake.dir)
                self._drop("error")
            finally:
                with self._cond:
                    self.pending_bytes -= size

    def _backlog(self) -> int:
        now = time.monotonic()
        if now - self._scanned_at > _RESCAN_S:
            self._scanned_at = now
            self.backlog = backlog_bytes(self.intake.dir)
        return self.backlog

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        if self._on_drop:
            self._on_drop(reason)
        now = time.monotonic()
        if now - self._last_warning > _WARN_EVERY_S:
            self._last_warning = now
            log.warning("reflow capture is behind: dropped %s so far (pending %d bytes in memory, %d on disk)",
                        dict(self.dropped), self.pending_bytes, self.backlog)  # fmt: skip


class WorkerProcess:
    """``python -m serving.adapter.capture_worker``: its settings go in on the first line of its stdin, then each
    byte on stdin is a doorbell (new frames); stdin's end means "build what is there and exit". It writes one JSON
    line of counters to stdout each second; the adapter passes them to ``on_status``."""

    def __init__(self, settings: dict, on_status: Callable[[dict], Any] | None = None):
        self.settings, self.on_status = settings, on_status
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._stopping = False
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving.adapter.capture_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            process_group=0,  # a SIGTERM to the adapter's group is the adapter's: it stops the worker by stdin
        )  # fmt: skip
        self.starts += 1
        self.proc.stdin.write(json.dumps(self.settings).encode() + b"\n")  # the secret goes by pipe, not argv
        self.proc.stdin.flush()
        os.set_blocking(self.proc.stdin.fileno(), False)  # a doorbell never waits for a busy worker
        threading.Thread(target=self._watch, args=(self.proc,), name="capture-worker-watch", daemon=True).start()

    def ring(self) -> None:
        with self._lock:
            if self.proc is None or self._stopping:
                return
            with contextlib.suppress(BlockingIOError, BrokenPipeError, ValueError, OSError):
                os.write(self.proc.stdin.fileno(), b".")  # a full pipe already holds a ring

    def _watch(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            if self.on_status:
                with contextlib.suppress(ValueError):
                    self.on_status(json.loads(line))
        code = proc.wait()
        with self._lock:
            if self._stopping:
                return
        log.warning("reflow capture worker exited with %s; starting it again in %.0f s", code, _RESTART_DELAY_S)
        time.sleep(_RESTART_DELAY_S)
        with self._lock:
            if self._stopping:
                return
            with contextlib.suppress(OSError):
                proc.stdin.close()
            self._start()

    def stop(self, timeout: float) -> None:
        with self._lock:
            self._stopping = True
            proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the end of stdin: build what is there and exit
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("reflow capture worker did not finish within %.0f s; killed", timeout)
            proc.kill()
            proc.wait()
