"""The engine's default torch thread count: half of the CPUs it may use (``serving/engine/threads.py``)."""

from __future__ import annotations

import pytest

from serving.engine.__main__ import parse_args
from serving.engine.threads import default_thread_count, quota_cpus


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "threads"),
    [
        (1, None, 1),  # never 0
        (2, None, 1),  # the shared 2-core machine: one thread (measured best there)
        (3, None, 1),
        (16, None, 8),
        (16, "max 100000", 8),  # no quota
        (64, "400000 100000", 2),  # a 4-CPU Kubernetes limit on a 64-core node
        (64, "150000 100000", 1),  # 1.5 CPUs
        (64, "50000 100000", 1),  # half a CPU: still one thread
        (4, "1600000 100000", 2),  # a quota above the affinity mask: the mask wins
        (8, "garbage", 4),  # unreadable quota: the mask alone
    ],
)
def test_default_thread_count(affinity, cpu_max, threads):
    assert default_thread_count(affinity, cpu_max) == threads


def test_quota_parsing():
    assert quota_cpus("200000 100000\n") == 2.0
    assert quota_cpus("max 100000\n") is None
    assert quota_cpus("") is None and quota_cpus(None) is None
    assert quota_cpus("0 100000") is None


def test_threads_flag_overrides_and_defaults_to_the_rule():
    assert parse_args(["--model", "m"]).threads is None  # None: default_threads() at start-up
    assert parse_args(["--model", "m", "--threads", "3"]).threads == 3
    assert parse_args(["--model", "m", "--threads", "0"]).threads == 0  # torch's own default


def test_default_threads_reads_the_affinity_mask_and_the_cgroup_quota(tmp_path, monkeypatch):
    from serving.engine import threads

    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("300000 100000\n")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", str(cpu_max))
    assert threads.default_threads() == 1  # 3 CPUs of quota, not 16 of mask
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", str(tmp_path / "absent"))
    assert threads.default_threads() == 8
