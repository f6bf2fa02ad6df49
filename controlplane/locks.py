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

import zlib

from django.db import connection, transaction


def _lock_key(name: str) -> int:
    # A stable signed 64-bit key per lock name; crc32 keeps it readable in pg_locks.
    return zlib.crc32(f"aicp:{name}".encode())


def platform_lock(name: str) -> None:
    """Take the transaction-scoped lock ``name``; it is released at commit or rollback."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("platform_lock() must be called inside transaction.atomic()")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(name)])


TASK_ADMISSION_LOCK = "task-admission"
