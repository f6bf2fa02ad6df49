"""How many intra-op threads torch gets by default: about half of the CPUs this process may really use.

Why not torch's own default: torch sizes its OpenMP pool from the machine's cores and ignores the cgroup CPU
quota, and an intra-op pool is only as fast as its slowest thread, since every kernel ends at a barrier. When a
neighbour (another engine, a test run, the adapter) takes a core, one descheduled thread stalls every kernel of
every decode step. Measured on a shared 2-core machine (demo model, ``python -m serving.bench`` on
/v1/completions, 64 tokens with ``ignore_eos``, the two engines' rounds alternating, load average 1–7 from other
users): torch's default (2 threads) gave 17–913 output tok/s at concurrency 1 and 20–84 at concurrency 4; 1
thread gave 254–542 and 617–1565. An earlier run on the same machine: 66–783 against 485–631 at concurrency 1.

The rule: usable = the CPUs in the affinity mask (``os.sched_getaffinity``: taskset, cpusets), capped by the
cgroup v2 quota (``/sys/fs/cgroup/cpu.max``: quota / period, a Kubernetes CPU limit); threads = half of that,
rounded down, at least 1. Half because

* the process needs CPU besides the kernels: the asyncio front end (HTTP, JSON, SSE) and the worker's Python
  between kernels (sampling, detokenising) run alongside, and a thread that competes with them for a core
  is the descheduled one;
* the affinity mask lists logical CPUs, and on an SMT machine half of them is the number of physical cores,
  which is what torch itself would pick there (two threads on the two halves of one core gain little for
  these memory-bound kernels), so on a dedicated machine the rule lands where torch does.

``--threads N`` overrides it; ``--threads 0`` leaves torch's own default.
"""

from __future__ import annotations

import math
import os

CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def quota_cpus(cpu_max: str | None) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` ("QUOTA PERIOD" in µs, or "max PERIOD"); None when unlimited."""
    if not cpu_max:
        return None
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def default_thread_count(affinity_cpus: int, cpu_max: str | None = None) -> int:
    """Half of the usable CPUs (affinity mask capped by the cgroup quota), rounded down, at least 1."""
    usable = float(max(affinity_cpus, 1))
    quota = quota_cpus(cpu_max)
    if quota is not None:
        usable = min(usable, quota)
    return max(1, math.floor(usable / 2))


def default_threads() -> int:
    """``default_thread_count`` for this process, read from its affinity mask and its cgroup."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = os.cpu_count() or 1
    try:
        with open(CGROUP_CPU_MAX, encoding="ascii") as fh:
            cpu_max = fh.read()
    except OSError:  # cgroup v1 or no cgroup filesystem: the affinity mask alone
        cpu_max = None
    return default_thread_count(affinity, cpu_max)
