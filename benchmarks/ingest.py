"""``make bench-ingest``: the ingest API's throughput, and a month's latency report read from its roll-ups.

What it does (see ``benchmarks/README.md``):

1. drops and recreates a dedicated database, ``<DATABASE_URL's database>_bench_ingest``, migrates it and seeds
   it as ``make bench-api`` does (``benchmarks.api.seed``) with two tasks, each created through
   ``inference_jobs.services.task_create``, which issues the task's ingest token;
2. synthesises, for the second task, a month (720 hours ending at the start of the current hour) of ten
   million requests with numpy, hour by hour, and stores it as the product's hour and day roll-ups
   (``LatencyRollup``, histograms binned as ``telemetry/sketch.py``);
3. serves the app with gunicorn (DEBUG off) and, over HTTP with ``requests``, plays two replicas of the first
   task's adapter: two threads, a ``requests.Session`` each, POST pre-built batches of 500 metric records
   (shaped as ``serving/adapter/metrics.py`` writes them) to ``/api/v1/ingest/metrics/`` with the task's
   ingest token, for about ten seconds after a warm-up; each answer must be 200 with ``stored`` = 500. Then a
   few re-sends of already-stored batches (each must store nothing), and the same with reflow records
   (``serving/adapter/reflow.py``) to ``/api/v1/ingest/reflow/``;
4. times ``GET /api/v1/tasks/{id}/latency/`` over the last 30 days as a member of the second task's tenant
   (the answer must come from the roll-ups and count every synthesised request of the window);
5. breaks batches and the latency query down in-process (time in SQL, the rest in Python), prints
   ``name=value`` lines on stdout (progress and diagnostics go to stderr), stops the server and drops the
   database (``--keep-db`` keeps it).

The numbers are measured on every run; nothing is typed in. Exit status: 0 when the benchmark ran (targets
missed or not; ``--check`` makes a missed target exit 2), 1 on any failure.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import pstats
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from benchmarks.api import (
    BenchError,
    Server,
    analyze,
    bench_main,
    bench_run,
    emit,
    expect,
    log_plan,
    log_profile,
    ms,
    percentile,
    profile_request,
    seed,
    timed,
)
from benchmarks.traffic import (
    Month,
    iso,
    log,
    metric_records,
    month_of_rollups,
    reflow_records,
)

METRICS_URL = "/api/v1/ingest/metrics/"
REFLOW_URL = "/api/v1/ingest/reflow/"

# Ingest: two replicas of one task's adapter, each sending batches of BATCH records, for about TARGET_S seconds.
SENDERS = 2
BATCH = 500
TARGET_S = 10.0
MAX_BATCHES_PER_SENDER = 400  # bodies are built before the clock starts: bounds the memory they take
DUPLICATE_RESENDS = 5

LATENCY_QUERIES = 20
MONTH_TTFT_TARGET_MS = 600  # the month task's targets: a few per cent of its requests miss them
MONTH_TPOT_TARGET_MS = 45

TARGET_INGEST_RECORDS_PER_S = 5000
TARGET_LATENCY_QUERY_MS = 200


def body(task, records: list[dict]) -> bytes:
    return json.dumps({"task_id": task.pk, "records": records}).encode()


# --- ingest over HTTP -------------------------------------------------------------------------------------------


@dataclass
class SenderResult:
    latencies: list[float] = field(default_factory=list)
    stored: int = 0
    started: float = 0.0
    finished: float = 0.0
    error: BaseException | None = None


def post_batch(session, url: str, token: str, payload: bytes, what: str) -> tuple[dict, float]:
    response, elapsed = timed(session, "POST", url, token, data=payload)
    answer = expect(response, 200, what)
    if answer.get("stored") != BATCH or answer.get("rejected") != [] or answer.get("received") != BATCH:
        raise BenchError(f"{what}: expected {BATCH} stored and none rejected, got {json.dumps(answer)[:1000]}")
    return answer, elapsed


def send_all(server: Server, url: str, token: str, pools: list[list[bytes]], deadline_s: float, label: str):
    """Each sender (a thread with its own Session) posts the bodies of its pool in turn until the pool is spent
    or ``deadline_s`` has passed since the common start; returns the senders' results and the wall time."""
    import requests

    results = [SenderResult() for _ in pools]
    start = threading.Barrier(len(pools) + 1)
    stop = threading.Event()

    def sender(index: int) -> None:
        result, pool = results[index], pools[index]
        with requests.Session() as session:
            session.headers["Content-Type"] = "application/json"
            try:
                start.wait()
                result.started = time.perf_counter()
                deadline = result.started + deadline_s
                n = 0
                while pool and not stop.is_set() and time.perf_counter() < deadline:
                    n += 1
                    _, elapsed = post_batch(session, url, token, pool.pop(), f"{label} sender {index} batch {n}")
                    result.latencies.append(elapsed)
                    result.stored += BATCH
            except BaseException as exc:  # re-raised in the main thread
                result.error = exc
                stop.set()
            finally:
                result.finished = time.perf_counter()

    threads = [threading.Thread(target=sender, args=(i,), name=f"sender-{i}") for i in range(len(pools))]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    for result in results:
        if result.error is not None:
            if isinstance(result.error, BenchError):
                raise result.error
            raise BenchError(f"{label}: a sender failed: {result.error!r}") from result.error
    wall = max(r.finished for r in results) - min(r.started for r in results)
    return results, wall


def ingest_phase(server: Server, task, token: str, kind: str, make_records, rng, target_s: float) -> dict:
    """Warm up (one batch per sender, twice), size the pools from the second round, then send for ``target_s``."""
    url = f"{server.base_url}{METRICS_URL if kind == 'metrics' else REFLOW_URL}"
    warm_latencies = []
    for round_ in range(2):
        pools = [[body(task, make_records(rng, task, BATCH, datetime.now(UTC)))] for _ in range(SENDERS)]
        results, _ = send_all(server, url, token, pools, 60.0, f"{kind} warm-up {round_ + 1}")
        warm_latencies = [lat for r in results for lat in r.latencies]
    per_batch = max(warm_latencies)
    per_sender = min(MAX_BATCHES_PER_SENDER, max(10, math.ceil(3 * target_s / per_batch)))
    started = time.perf_counter()
    pools = []
    for _ in range(SENDERS):
        pools.append([body(task, make_records(rng, task, BATCH, datetime.now(UTC))) for _ in range(per_sender)])
    size = sum(len(b) for pool in pools for b in pool)
    log(f"{kind}: warm-up batches took {', '.join(f'{ms(v)}' for v in warm_latencies)} ms; built {SENDERS} x "
        f"{per_sender} batches of {BATCH} ({size / len(pools) / per_sender / 1024:.0f} KiB each) in "
        f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    sent_bodies = [list(pool) for pool in pools]
    results, wall = send_all(server, url, token, pools, target_s, kind)
    latencies = [lat for r in results for lat in r.latencies]
    stored = sum(r.stored for r in results)
    left = sum(len(pool) for pool in pools)
    if left == 0 and wall < target_s:
        log(f"{kind}: every prepared batch was sent before {target_s:.0f}s had passed ({wall:.1f}s)")
    log(f"{kind}: {SENDERS} senders stored {stored} records in {len(latencies)} batches in {wall:.2f}s; per batch "
        f"min {ms(min(latencies))} p50 {ms(statistics.median(latencies))} p99 {ms(percentile(latencies, 99))} "
        f"max {ms(max(latencies))} ms")  # fmt: skip
    sent = [b for pool, rest in zip(sent_bodies, pools, strict=True) for b in pool[len(rest) :]]
    return {"stored": stored, "wall": wall, "latencies": latencies, "sent": sent, "url": url}


def duplicate_resends(server: Server, token: str, url: str, sent: list[bytes]) -> list[float]:
    """Re-send already-stored batches: each must answer 200 with nothing stored and every record a duplicate."""
    import requests

    samples = []
    with requests.Session() as session:
        session.headers["Content-Type"] = "application/json"
        for i, payload in enumerate(sent[:DUPLICATE_RESENDS]):
            response, elapsed = timed(session, "POST", url, token, data=payload)
            answer = expect(response, 200, f"duplicate re-send {i}")
            if answer.get("stored") != 0 or answer.get("duplicates") != BATCH:
                raise BenchError(f"duplicate re-send {i}: expected 0 stored, {BATCH} duplicates: {answer}")
            samples.append(elapsed)
    return samples


def latency_phase(server: Server, task, member_token: str, month: Month) -> tuple[list[float], dict, str]:
    """The last 30 days' report over HTTP: one unmeasured query, then ``LATENCY_QUERIES`` timed ones."""
    import requests

    from telemetry.periods import hour_of, next_hour

    samples, answer, path = [], {}, ""
    with requests.Session() as session:
        for i in range(LATENCY_QUERIES + 1):
            now = datetime.now(UTC)
            since = now - timedelta(days=30)
            path = f"/api/v1/tasks/{task.pk}/latency/?since={iso(since)}&until={iso(now)}"
            response, elapsed = timed(session, "GET", f"{server.base_url}{path}", member_token)
            answer = expect(response, 200, f"GET latency #{i}")
            low, high = hour_of(since), next_hour(now)
            inside = [h for h, start in enumerate(month.hour_starts) if low <= start < high]
            expected = {name: sum(getattr(month, name)[h] for h in inside) for name in ("requests", "errors", "good")}
            got = {name: answer["summary"][name] for name in expected}
            if answer.get("source") != "rollups" or got != expected:
                raise BenchError(f"GET latency #{i}: expected source rollups and {expected}, got source "
                                 f"{answer.get('source')} and {got}")  # fmt: skip
            if i:
                samples.append(elapsed)
    return samples, answer, path


# --- in-process breakdowns --------------------------------------------------------------------------------------


def breakdown(label: str, token: str, method: str, path: str, make_data, *, profile: bool) -> None:
    """The request in-process twice (rolled back), the second reported: time in SQL, the rest in Python. With
    ``profile``, a cProfile of a third, its top functions by cumulative and by own time."""
    for _ in range(2):
        result = profile_request(token, method, path, make_data(), rollback=True)
        if result.status != 200:
            raise BenchError(f"in-process {label} answered {result.status}")
    log_profile(label, result, show_sql=False)
    if method == "GET":
        log_plan(label, result)
    if profile:
        profiler = cProfile.Profile()
        data = make_data()
        profiler.enable()
        profile_request(token, method, path, data, rollback=True)
        profiler.disable()
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(25)
            log(f"cProfile of {label}, by {order}:\n{out.getvalue()}")


# --- main -------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import requests

    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    with bench_run("bench_ingest", keep_db=args.keep_db, log=log) as bench:
        world = seed(tasks=2)

        from django.db import connections

        from inference_jobs.ingest_tokens import ingest_token_of
        from inference_jobs.models import InferenceTask
        from reflow.models import ReflowRecord
        from telemetry.models import LatencyRollup, RequestMetric
        from telemetry.periods import hour_of

        ingest_task, month_task = InferenceTask.objects.select_related("tenant").order_by("pk")[:2]
        ingest_token = ingest_token_of(ingest_task)
        if not ingest_token:
            raise BenchError(f"task {ingest_task.pk} has no ingest token")
        InferenceTask.objects.filter(pk=month_task.pk).update(
            ttft_slo_ms=MONTH_TTFT_TARGET_MS, tpot_slo_ms=MONTH_TPOT_TARGET_MS
        )
        month_task.refresh_from_db()
        member_token = next(t.token for t in world.tenants if t.slug == month_task.tenant.slug)

        month = month_of_rollups(month_task, rng, hour_of(datetime.now(UTC)))
        analyze()
        connections.close_all()

        server = bench.serve(args.workers)
        with requests.Session() as session:
            server.wait_ready(session)
        log(f"gunicorn ({args.workers} sync workers) on {server.base_url}")

        metrics = ingest_phase(server, ingest_task, ingest_token, "metrics", metric_records, rng, args.seconds)
        duplicates = duplicate_resends(server, ingest_token, metrics["url"], metrics["sent"])
        log(f"duplicate re-sends: {', '.join(str(ms(v)) for v in duplicates)} ms")
        reflow = ingest_phase(server, ingest_task, ingest_token, "reflow", reflow_records, rng, args.seconds)

        rows_metrics = RequestMetric.objects.filter(task_id=ingest_task.pk).count()
        rows_reflow = ReflowRecord.objects.filter(task_id=ingest_task.pk).count()
        warm = 2 * SENDERS * BATCH  # the warm-up rounds' records
        if rows_metrics != metrics["stored"] + warm or rows_reflow != reflow["stored"] + warm:
            raise BenchError(f"the database holds {rows_metrics} metrics and {rows_reflow} reflow records, the "
                             f"answers said {metrics['stored'] + warm} and {reflow['stored'] + warm}")  # fmt: skip

        analyze()
        latency, report, latency_path = latency_phase(server, month_task, member_token, month)
        summary = report["summary"]
        log(f"GET latency (30 days, step {report['step_s']}s, {len(report['series'])} points): n={len(latency)} "
            f"min={ms(min(latency))} p50={ms(statistics.median(latency))} max={ms(max(latency))} ms; summary "
            f"requests {summary['requests']}, good_ratio {summary['good_ratio']}, ttft {summary['ttft_ms']}, "
            f"tpot {summary['tpot_ms']}, itl {summary['itl_ms']}, e2e {summary['e2e_ms']}")  # fmt: skip
        rollup_rows = LatencyRollup.objects.filter(task_id=month_task.pk).count()
        bench.stop_server()
        connections.close_all()

        # Where the time goes, in-process (each rolled back: a fresh batch each time, so nothing is a duplicate).
        breakdown("POST metrics batch", ingest_token, "POST", METRICS_URL,
                  lambda: {"task_id": ingest_task.pk, "records": metric_records(rng, ingest_task, BATCH,
                                                                                 datetime.now(UTC))},
                  profile=args.profile)  # fmt: skip
        stored_batch = json.loads(metrics["sent"][0])
        breakdown("POST metrics batch, all duplicates", ingest_token, "POST", METRICS_URL, lambda: stored_batch,
                  profile=args.profile)  # fmt: skip
        breakdown("POST reflow batch", ingest_token, "POST", REFLOW_URL,
                  lambda: {"task_id": ingest_task.pk, "records": reflow_records(rng, ingest_task, BATCH,
                                                                                 datetime.now(UTC))},
                  profile=args.profile)  # fmt: skip
        breakdown("GET latency 30 days", member_token, "GET", latency_path, lambda: None, profile=args.profile)

        records_per_s = round(metrics["stored"] / metrics["wall"])
        query_ms = ms(statistics.median(latency))
        emit("ingest_records_per_s", records_per_s)
        emit("ingest_batch_p50_ms", ms(statistics.median(metrics["latencies"])))
        emit("ingest_batch_p99_ms", ms(percentile(metrics["latencies"], 99)))
        emit("ingest_batches", len(metrics["latencies"]))
        emit("ingest_seconds", round(metrics["wall"], 2))
        emit("ingest_reflow_records_per_s", round(reflow["stored"] / reflow["wall"]))
        emit("ingest_reflow_batch_p50_ms", ms(statistics.median(reflow["latencies"])))
        emit("ingest_reflow_batch_p99_ms", ms(percentile(reflow["latencies"], 99)))
        emit("ingest_duplicate_batch_ms", ms(statistics.median(duplicates)))
        emit("latency_query_ms", query_ms)
        emit("latency_query_p99_ms", ms(percentile(latency, 99)))
        emit("latency_rollup_rows", rollup_rows)
        emit("latency_month_requests", summary["requests"])
        print(f"# targets: ingest_records_per_s >= {TARGET_INGEST_RECORDS_PER_S}, "
              f"latency_query_ms < {TARGET_LATENCY_QUERY_MS}", flush=True)  # fmt: skip

        missed = []
        if records_per_s < TARGET_INGEST_RECORDS_PER_S:
            missed.append(f"ingest {records_per_s} records/s < {TARGET_INGEST_RECORDS_PER_S}")
        if query_ms >= TARGET_LATENCY_QUERY_MS:
            missed.append(f"latency query {query_ms} ms >= {TARGET_LATENCY_QUERY_MS} ms")
        log("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
        return 2 if missed and args.check else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--seconds", type=float, default=TARGET_S, help="how long each ingest phase sends (10)")
    parser.add_argument("--seed", type=int, default=0, help="the random generator's seed (default 0)")
    parser.add_argument("--profile", action="store_true", help="log a cProfile of each in-process breakdown")


def main(argv: list[str] | None = None) -> int:
    return bench_main("python -m benchmarks.ingest", __doc__, add_arguments, run, argv, log=log)


if __name__ == "__main__":
    sys.exit(main())
