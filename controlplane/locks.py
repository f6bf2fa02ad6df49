"""Locks for the rules that count.

A rule such as "at most 500 tasks" is a read followed by a write; two requests running side by side would
both read 499 and both write. Each counting rule therefore runs inside ``transaction.atomic()`` holding a
lock that every writer of that count takes first:

* one platform-wide PostgreSQL advisory lock per counted quantity (``platform_lock``), and
* row locks (``SELECT ... FOR UPDATE``) on the tenant, pool and gateway rows whose usage is counted.

Every service takes them in the same order (platform, tenant, pool, gateway), so two writers can wait
for each other but never deadlock. On SQLite (the embedded default) there are no advisory locks; its
IMMEDIATE transactions serialise every writer instead (see settings).
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction


def lock_key(name: str) -> int:
    # A stable signed 64-bit key per lock name; crc32 keeps it readable in pg_locks.
    return zlib.crc32(f"aicp:{name}".encode())


def platform_lock(name: str) -> None:
    """Take the transaction-scoped lock ``name``; it is released at commit or rollback."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("platform_lock() must be called inside transaction.atomic()")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(name)])


TASK_ADMISSION_LOCK = "task-admission"


@contextmanager
def try_lock(name: str) -> Iterator[bool]:
    """Hold the lock ``name`` for the block if nobody else does; yields whether it was taken (never waits).

    For jobs that must not overlap (the reconcile sweep) and run outside any transaction: a PostgreSQL session
    advisory lock, or on SQLite a file lock under ``var/``.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(name)])
            taken = cursor.fetchone()[0]
        try:
            yield taken
        finally:
            if taken:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(name)])
        return
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.VAR_DIR / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
