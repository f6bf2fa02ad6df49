"""``make bench-reconcile``: how long the reconciler takes to resync 500 tasks, and what it writes when nothing drifted.

What it does (see ``benchmarks/README.md``):

1. drops and recreates a dedicated database, ``<DATABASE_URL's database>_bench_reconcile``, migrates it and seeds
   it as ``make bench-api`` does, with the platform's maximum of 500 tasks (50 tenants, 32 gateways), all
   created through ``inference_jobs.services.task_create`` with no orchestrator configured;
2. starts the Kubernetes API server emulator (``tests/kube/emulator.py``, over HTTP on 127.0.0.1) and points the
   ``kubernetes`` backend at it;
3. runs ``reconcile_sweep()`` (the periodic job) three times, timing each: the first creates every object (50
   namespaces with their quota and policy, 500 × Deployment, Service, Secret, HTTPRoute, 32 Gateways with
   their listeners), the next two find everything in place. The emulator counts the requests of each.

Output (stdout, ``name=value``):

* ``reconcile_full_resync_s``: seconds of a sweep over 500 tasks whose objects exist (the better of the two
  in-sync sweeps; target < 10);
* ``reconcile_writes_on_no_drift``: create/update/patch/delete requests of those sweeps (target 0);
* ``reconcile_initial_sync_s``, ``reconcile_initial_writes``: the first sweep, which creates everything;
* ``reconcile_requests_per_resync``: all requests of an in-sync sweep (lists, mostly);
* ``reconcile_tasks``: 500.

Exit status 0 when it ran (targets are not asserted), 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.api import BenchError, bench_main, bench_run, emit, log, seed

TASKS = 500
RESYNCS = 2


def run(args: argparse.Namespace) -> int:
    with bench_run("bench_reconcile", keep_db=args.keep_db):
        from django.conf import settings

        settings.AICP_ORCHESTRATOR = "none"  # seed quietly: no reconcile per write
        seed(tasks=TASKS)
        from inference_jobs.models import InferenceTask

        count = InferenceTask.objects.count()
        if count != TASKS:
            raise BenchError(f"seeded {count} tasks, expected {TASKS}")
        measure(settings)
    return 0


def measure(settings) -> None:
    from inference_jobs.orchestrator.kubernetes.api import reset_client
    from inference_jobs.reconciler import reconcile_sweep
    from tests.kube.emulator import KubeEmulator

    with KubeEmulator() as emulator:
        emulator.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "aicp-gateways"}})
        settings.AICP_ORCHESTRATOR = "kubernetes"
        settings.AICP_KUBE_API_URL = emulator.url
        reset_client()

        def sweep(label: str) -> tuple[float, int, int]:
            emulator.reset_log()
            started = time.perf_counter()
            report = reconcile_sweep()
            elapsed = time.perf_counter() - started
            if report is None or report["tasks"] != TASKS or report["errors"]:
                raise BenchError(f"{label}: the sweep did not reconcile every task cleanly: {report}")
            writes, requests = emulator.writes(), len(emulator.requests)
            log(f"{label}: {elapsed:.2f} s, {requests} requests, {writes} writes, report {report}")
            return elapsed, writes, requests

        initial_s, initial_writes, _ = sweep("initial sync")
        deployments = len(emulator.objects("deployments"))
        if deployments != TASKS:
            raise BenchError(f"the initial sync left {deployments} Deployments, expected {TASKS}")
        resyncs = [sweep(f"resync {i + 1}") for i in range(RESYNCS)]
        emit("reconcile_full_resync_s", round(min(elapsed for elapsed, _, _ in resyncs), 3))
        emit("reconcile_writes_on_no_drift", sum(writes for _, writes, _ in resyncs))
        emit("reconcile_initial_sync_s", round(initial_s, 3))
        emit("reconcile_initial_writes", initial_writes)
        emit("reconcile_requests_per_resync", resyncs[-1][2])
        emit("reconcile_tasks", TASKS)


def main(argv: list[str] | None = None) -> int:
    return bench_main("python -m benchmarks.reconcile", __doc__, None, run, argv)


if __name__ == "__main__":
    sys.exit(main())
