"""``make bench-api``: latency and query count of the task API on PostgreSQL, served by a real WSGI server.

What it does (see ``benchmarks/README.md``):

1. drops and recreates a dedicated database, ``<DATABASE_URL's database>_bench``, and migrates it;
2. seeds 50 tenants (a member, a personal API token and a ready model each), two NVIDIA pools granted to
   every tenant, 32 gateways of 16 ports, a normal-mode NVIDIA runtime image, and 400 tasks created through
   ``inference_jobs.services.task_create`` (admission, ports, events, audit: as the API would);
3. serves the app with gunicorn (DEBUG off) and, over HTTP with ``requests``, creates the last 100 tasks
   (the platform then holds its maximum of 500) timing each POST, then times GET list requests;
4. counts the SQL queries of a list in-process (``django.test.Client`` under ``CaptureQueriesContext``);
5. prints ``name=value`` lines on stdout (progress and diagnostics go to stderr), stops the server and
   drops the database (``--keep-db`` keeps it).

The numbers are measured on every run; nothing is typed in. Exit status: 0 when the benchmark ran (targets
missed or not: it is a benchmark, not a test; ``--check`` makes a missed target exit 2), 1 on any failure.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/aicp"

TENANTS = 50
SEEDED_TASKS = 400  # through the service, before the server starts
API_CREATES = 100  # through POST /api/v1/tasks/, timed; 400 + 100 = the platform's maximum of 500
GATEWAYS = 32  # x 16 ports = 512 >= 500
PORTS_PER_GATEWAY = 16
POOLS = 2
COMPUTE_UNITS_PER_TASK = 2

LIST_ROUNDS = 50  # each round: 4 tenant lists (default page), 2 admin lists ?limit=50, 1 admin ?limit=200
WARMUP_REQUESTS = 10

TARGET_LIST_P95_MS = 50.0
TARGET_CREATE_P95_MS = 100.0
TARGET_MAX_QUERIES = 8

TASKS_URL = "/api/v1/tasks/"


class BenchError(RuntimeError):
    """The benchmark could not run as designed; the message says why."""


def log(message: str) -> None:
    print(f"[bench-api] {message}", file=sys.stderr, flush=True)


def emit(name: str, value) -> None:
    print(f"{name}={value}", flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``p`` % of the samples at or below it."""
    if not values:
        raise BenchError("no samples to take a percentile of")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


# --- the dedicated database -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchDatabase:
    name: str
    url: str  # the bench database
    maintenance_url: str  # the "postgres" database, to create and drop it


def bench_database(database_url: str, suffix: str = "bench") -> BenchDatabase:
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise BenchError(f"DATABASE_URL must be a PostgreSQL URL (postgres://...), not {parts.scheme or '(none)'}://")
    base = parts.path.lstrip("/") or "aicp"
    name = f"{base}_{suffix}"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise BenchError(f"cannot derive a safe database name from {base!r}")
    return BenchDatabase(
        name=name,
        url=urlunsplit(parts._replace(path=f"/{name}")),
        maintenance_url=urlunsplit(parts._replace(scheme="postgresql", path="/postgres")),
    )


def _admin_sql(db: BenchDatabase, statement) -> None:
    import psycopg

    try:
        with psycopg.connect(db.maintenance_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)
    except psycopg.OperationalError as exc:
        raise BenchError(f"cannot reach PostgreSQL through {db.maintenance_url}: {exc}") from exc


def recreate_database(db: BenchDatabase) -> None:
    from psycopg import sql

    _admin_sql(db, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
    _admin_sql(db, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))


def drop_database(db: BenchDatabase) -> None:
    from psycopg import sql

    _admin_sql(db, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))


def server_env(db: BenchDatabase) -> dict[str, str]:
    """The environment of ``migrate``, gunicorn and this process: the bench database, DEBUG off (with DEBUG
    on, Django keeps every query of a request in memory), and plain HTTP (DEBUG off would redirect it to HTTPS)."""
    return {
        **os.environ,
        "DATABASE_URL": db.url,
        "DJANGO_DEBUG": "0",
        "AICP_SECURE": "0",
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    }


def migrate(db: BenchDatabase) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=server_env(db),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py migrate failed:\n{result.stdout}\n{result.stderr}")


def setup_django(db: BenchDatabase) -> None:
    os.environ.update({k: v for k, v in server_env(db).items() if k in ("DATABASE_URL", "DJANGO_DEBUG", "AICP_SECURE")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    if settings.DATABASES["default"]["NAME"] != db.name:
        raise BenchError(f"Django is connected to {settings.DATABASES['default']['NAME']!r}, not {db.name!r}")


# --- the world --------------------------------------------------------------------------------------------


@dataclass
class TenantWorld:
    slug: str
    token: str
    model_id: int


@dataclass
class World:
    admin_token: str
    tenants: list[TenantWorld] = field(default_factory=list)
    pool_slugs: list[str] = field(default_factory=list)
    gateway_slugs: list[str] = field(default_factory=list)


def seed(tasks: int = SEEDED_TASKS) -> World:
    from django.contrib.auth import get_user_model

    from catalog.choices import ModelStatus
    from catalog.models import Model, RuntimeImage, RuntimeImageVersion
    from compute_pools.choices import Mode, Vendor
    from compute_pools.models import AcceleratorType, ComputePool, PoolGrant
    from gateways.services import gateway_create
    from inference_jobs.services import task_create
    from tenancy.choices import Role
    from tenancy.services import membership_create, personal_token_create, tenant_create
    from tests.factories import LLAMA_7B_CONFIG

    user_model = get_user_model()
    started = time.perf_counter()
    admin = user_model.objects.create_user("bench-admin", password=None, is_superuser=True, is_staff=True)
    world = World(admin_token=personal_token_create(actor=admin, name="bench").plaintext)

    nvidia = AcceleratorType.objects.get(slug="nvidia-gpu")  # seeded by compute_pools' migrations
    pools = [
        ComputePool.objects.create(
            slug=f"bench-a100-{i}",
            name=f"Bench A100 pool {i}",
            accelerator_type=nvidia,
            capacity_compute_units=4096,
            memory_per_card_gib=80,
            node_selector={"aicp.io/pool": f"bench-a100-{i}"},
        )
        for i in range(POOLS)
    ]
    world.pool_slugs = [pool.slug for pool in pools]
    gateways = [
        gateway_create(
            actor=admin,
            slug=f"bench-gw-{i:02d}",
            name=f"Bench gateway {i}",
            address=f"gw{i}.bench.example.com",
            port_range_start=30000 + i * PORTS_PER_GATEWAY,
            port_range_end=30000 + (i + 1) * PORTS_PER_GATEWAY - 1,
        )
        for i in range(GATEWAYS)
    ]
    world.gateway_slugs = [gateway.slug for gateway in gateways]
    image = RuntimeImage.objects.create(
        slug="bench-normal-nvidia",
        name="Bench PyTorch runtime (NVIDIA)",
        mode=Mode.NORMAL,
        vendor=Vendor.NVIDIA,
        repository="registry.example.com/aicp/normal-nvidia",
    )
    RuntimeImageVersion.objects.create(image=image, version="1.0.0")

    tenants, members, models = [], [], []
    for i in range(TENANTS):
        tenant = tenant_create(
            actor=admin, slug=f"bench-{i:02d}", name=f"Bench tenant {i}", max_tasks=50, max_compute_units=256
        )
        member = user_model.objects.create_user(f"bench-member-{i:02d}", password=None)
        membership_create(actor=admin, tenant=tenant, user=member, role=Role.MEMBER)
        token = personal_token_create(actor=member, name="bench").plaintext
        model = Model.objects.create(
            tenant=tenant,
            name="llama2-7b-chat",
            architecture="LlamaForCausalLM",
            parameter_count=6_738_415_616,
            dtype="float16",
            context_length=4096,
            size_bytes=13_476_831_232,
            config=dict(LLAMA_7B_CONFIG),
            status=ModelStatus.READY,
            created_by=member,
        )
        PoolGrant.objects.bulk_create([PoolGrant(pool=pool, tenant=tenant) for pool in pools])
        tenants.append(tenant)
        members.append(member)
        models.append(model)
        world.tenants.append(TenantWorld(slug=tenant.slug, token=token, model_id=model.pk))
    log(f"seeded {TENANTS} tenants, {POOLS} pools, {GATEWAYS} gateways in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    for k in range(tasks):
        t = k % TENANTS
        task_create(
            actor=members[t],
            tenant=tenants[t],
            name=f"seeded-{k:03d}",
            model=models[t],
            mode=Mode.NORMAL,
            compute_pool=pools[k % POOLS],
            gateway=gateways[k // PORTS_PER_GATEWAY],
            compute_units_per_instance=COMPUTE_UNITS_PER_TASK,
            instances=1,
        )
    elapsed = time.perf_counter() - started
    log(f"seeded {tasks} tasks through task_create in {elapsed:.1f}s ({ms(elapsed / tasks)} ms each)")
    # A newer version is out: the seeded tasks now show "update available"; the API's creates pin it.
    RuntimeImageVersion.objects.create(image=image, version="1.1.0")
    return world


def api_payload(world: World, i: int) -> tuple[TenantWorld, dict]:
    """The i-th create through the API: tenants in rotation, gateways after those the seeded tasks filled."""
    tenant = world.tenants[i % TENANTS]
    gateway = world.gateway_slugs[(SEEDED_TASKS + i) // PORTS_PER_GATEWAY]
    return tenant, {
        "tenant": tenant.slug,
        "name": f"api-{i:03d}",
        "model": tenant.model_id,
        "mode": "normal",
        "compute_pool": world.pool_slugs[i % POOLS],
        "gateway": gateway,
        "compute_units_per_instance": COMPUTE_UNITS_PER_TASK,
    }


# --- in-process: query counts and where the time goes -----------------------------------------------------


@dataclass(frozen=True)
class Profile:
    status: int
    queries: int
    total_ms: float
    sql_ms: float
    sql: list[str]


def profile_request(token: str, method: str, path: str, data: dict | None = None, *, rollback: bool = False):
    """One request through Django in-process (no HTTP), with its SQL captured and timed to the microsecond
    (``CaptureQueriesContext`` rounds each query to the millisecond). ``rollback`` undoes its writes."""
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    sql_seconds = []

    def timer(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds.append(time.perf_counter() - started)

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    with transaction.atomic():
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
            started = time.perf_counter()
            if method == "GET":
                response = client.get(path)
            else:
                response = client.post(path, data=data, content_type="application/json")
            total = time.perf_counter() - started
        if rollback:
            transaction.set_rollback(True)
    return Profile(
        status=response.status_code,
        queries=len(captured.captured_queries),
        total_ms=ms(total),
        sql_ms=ms(sum(sql_seconds)),
        sql=[q["sql"] for q in captured.captured_queries],
    )


def log_profile(label: str, profile: Profile, *, show_sql: bool) -> None:
    log(
        f"in-process {label}: HTTP {profile.status}, {profile.queries} queries, {profile.total_ms} ms total, "
        f"{profile.sql_ms} ms in SQL, {round(profile.total_ms - profile.sql_ms, 1)} ms in Python"
    )
    if show_sql:
        for n, statement in enumerate(profile.sql, 1):
            log(f"    {n:2d}. {statement[:400]}")


def analyze() -> None:
    """Refresh the planner's statistics, as autovacuum would on a live database (a fresh one has none)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def log_plan(label: str, profile: Profile) -> None:
    """Planning and execution time of the request's main SELECT (its longest one), from EXPLAIN ANALYZE."""
    from django.db import connection

    selects = [statement for statement in profile.sql if statement.startswith("SELECT")]
    if not selects:
        return
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE) " + max(selects, key=len))
        plan = "\n".join(row[0] for row in cursor.fetchall())
    times = dict(re.findall(r"(Planning|Execution) Time: ([\d.]+) ms", plan))
    log(f"    {label}, main SELECT: planning {times.get('Planning')} ms, execution {times.get('Execution')} ms")


# --- the server -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn serving ``controlplane.wsgi`` on a free local port; stopped by ``stop()`` whatever happened."""

    def __init__(self, db: BenchDatabase, workers: int, access_log: tuple[Path, str] | None = None):
        """``access_log``: a file for gunicorn's access log and its line format (gunicorn's ``%(...)s`` atoms)."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_file = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "controlplane.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--threads",
                "1",
                "--timeout",
                "60",
                *(["--access-logfile", str(access_log[0]), "--access-logformat", access_log[1]] if access_log else []),
            ],
            cwd=ROOT,
            env=server_env(db),
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read()[-4000:]

    def wait_ready(self, session, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            try:
                session.get(f"{self.base_url}/api/v1/", timeout=5)
                return
            except OSError:
                time.sleep(0.2)
        raise BenchError(f"gunicorn did not answer within {timeout_s:.0f}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


# --- what every bench does around its measurements: database, server, command line ------------------------


class Bench:
    """The bench database ``bench_run`` made (migrated, Django set up on it) and the server a bench started."""

    def __init__(self, db: BenchDatabase):
        self.db = db
        self.server: Server | None = None

    def serve(self, workers: int, access_log: tuple[Path, str] | None = None) -> Server:
        """gunicorn on the bench database; ``bench_run`` stops it on the way out if ``stop_server`` has not."""
        self.server = Server(self.db, workers=workers, access_log=access_log)
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@contextmanager
def bench_run(suffix: str, *, keep_db: bool, log: Callable[[str], None] = log) -> Iterator[Bench]:
    """Recreate ``<DATABASE_URL's database>_<suffix>``, migrate it and set Django up on it. On the way out,
    whatever happened: stop the server, close Django's connections, drop the database (``keep_db`` keeps it)."""
    db = bench_database(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, suffix=suffix)
    log(f"recreating database {db.name}")
    recreate_database(db)
    bench = Bench(db)
    try:
        started = time.perf_counter()
        migrate(db)
        log(f"migrated {db.name} in {time.perf_counter() - started:.1f}s")
        setup_django(db)
        yield bench
    finally:
        bench.stop_server()
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if keep_db:
            log(f"kept database {db.name} ({db.url})")
        else:
            drop_database(db)
            log(f"dropped database {db.name}")


def bench_main(
    prog: str,
    doc: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None,
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
    *,
    log: Callable[[str], None] = log,
    keep_db_help: str = "leave the bench database for inspection",
) -> int:
    """A bench's command line: ``--keep-db``, then what ``add_arguments`` (if any) adds; the description is the first
    paragraph of ``doc``. Returns ``run(args)``'s exit status, or 1 (logged) when it raised ``BenchError``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--keep-db", action="store_true", help=keep_db_help)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        status = run(args)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    log(f"done in {time.perf_counter() - started:.1f}s")
    return status


def timed(session, method: str, url: str, token: str, **kwargs):
    started = time.perf_counter()
    response = session.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)
    return response, time.perf_counter() - started


def expect(response, status: int, what: str) -> dict:
    if response.status_code != status:
        raise BenchError(f"{what}: expected HTTP {status}, got {response.status_code}: {response.text[:1000]}")
    return response.json()


def warm_up(session, server: Server, world: World) -> None:
    """Every token once (its first use records ``last_used_at``, a write), and each worker a few times."""
    for token in [world.admin_token, *(tenant.token for tenant in world.tenants)]:
        expect(timed(session, "GET", f"{server.base_url}{TASKS_URL}?limit=1", token)[0], 200, "warm-up list")
    for _ in range(WARMUP_REQUESTS):
        expect(timed(session, "GET", f"{server.base_url}{TASKS_URL}", world.admin_token)[0], 200, "warm-up list")


def measure_creates(session, server: Server, world: World) -> list[float]:
    samples = []
    for i in range(API_CREATES):
        tenant, payload = api_payload(world, i)
        response, elapsed = timed(session, "POST", f"{server.base_url}{TASKS_URL}", tenant.token, json=payload)
        body = expect(response, 201, f"POST {TASKS_URL} #{i} as {tenant.slug}")
        if body.get("port") is None or body.get("tenant") != tenant.slug:
            raise BenchError(f"POST {TASKS_URL} #{i}: unexpected body {body}")
        samples.append(elapsed)
    return samples


@dataclass
class ListSamples:
    tenant: list[float] = field(default_factory=list)
    admin_50: list[float] = field(default_factory=list)
    admin_200: list[float] = field(default_factory=list)


def measure_lists(session, server: Server, world: World, total_tasks: int) -> ListSamples:
    """Interleaved, so that noise from the machine's other work falls on every kind alike."""
    samples = ListSamples()
    per_tenant = total_tasks // TENANTS
    url = f"{server.base_url}{TASKS_URL}"
    n = 0
    for _ in range(LIST_ROUNDS):
        for _ in range(4):
            tenant = world.tenants[n % TENANTS]
            n += 1
            response, elapsed = timed(session, "GET", url, tenant.token)
            body = expect(response, 200, f"GET {TASKS_URL} as {tenant.slug}")
            if body["count"] != per_tenant or len(body["results"]) != per_tenant:
                raise BenchError(f"{tenant.slug} sees {body['count']} tasks, expected {per_tenant}")
            samples.tenant.append(elapsed)
        for _ in range(2):
            response, elapsed = timed(session, "GET", f"{url}?limit=50", world.admin_token)
            body = expect(response, 200, f"GET {TASKS_URL}?limit=50 as platform admin")
            if body["count"] != total_tasks or len(body["results"]) != 50:
                raise BenchError(f"platform admin sees {body['count']}/{len(body['results'])} tasks")
            samples.admin_50.append(elapsed)
        response, elapsed = timed(session, "GET", f"{url}?limit=200", world.admin_token)
        body = expect(response, 200, f"GET {TASKS_URL}?limit=200 as platform admin")
        if len(body["results"]) != 200:
            raise BenchError(f"platform admin got {len(body['results'])} tasks at limit=200")
        samples.admin_200.append(elapsed)
    return samples


def summary(samples: list[float]) -> str:
    return (
        f"n={len(samples)} min={ms(min(samples))} p50={ms(statistics.median(samples))} "
        f"p95={ms(percentile(samples, 95))} max={ms(max(samples))} ms"
    )


# --- main -------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import requests

    with bench_run("bench", keep_db=args.keep_db) as bench:
        world = seed()

        from django.db import connections

        from inference_jobs.models import InferenceTask
        from tenancy.models import Tenant

        analyze()

        # Where a create's time goes: the same POST in-process, SQL captured, rolled back (the platform's
        # 500 tasks stay for the API's creates). The first one warms this process up and is not reported.
        tenant, payload = api_payload(world, 0)
        probe = {**payload, "name": "probe"}
        for _ in range(2):
            create_profile = profile_request(tenant.token, "POST", TASKS_URL, probe, rollback=True)
            if create_profile.status != 201:
                raise BenchError(f"in-process create probe answered {create_profile.status}")
        log_profile("POST create (rolled back)", create_profile, show_sql=args.show_queries)
        log_plan("create's re-read of the task", create_profile)
        connections.close_all()

        server = bench.serve(args.workers)
        with requests.Session() as session:
            server.wait_ready(session)
            log(f"gunicorn ({args.workers} sync workers) on {server.base_url}")
            warm_up(session, server, world)
            create_samples = measure_creates(session, server, world)
            log(f"POST {TASKS_URL}: {summary(create_samples)}")

            total_tasks = InferenceTask.objects.count()
            if total_tasks != SEEDED_TASKS + API_CREATES:
                raise BenchError(f"the platform holds {total_tasks} tasks, expected {SEEDED_TASKS + API_CREATES}")
            analyze()
            warm_up(session, server, world)
            lists = measure_lists(session, server, world, total_tasks)
            log(f"GET {TASKS_URL} as a tenant member (default page): {summary(lists.tenant)}")
            log(f"GET {TASKS_URL}?limit=50 as platform admin: {summary(lists.admin_50)}")
            log(f"GET {TASKS_URL}?limit=200 as platform admin: {summary(lists.admin_200)}")
        connections.close_all()

        # Query counts, in-process, at the platform's 500 tasks. One unmeasured request first.
        profile_request(world.admin_token, "GET", f"{TASKS_URL}?limit=1")
        profiles = {
            "admin_limit10": profile_request(world.admin_token, "GET", f"{TASKS_URL}?limit=10"),
            "admin_limit200": profile_request(world.admin_token, "GET", f"{TASKS_URL}?limit=200"),
            "admin_limit50": profile_request(world.admin_token, "GET", f"{TASKS_URL}?limit=50"),
            "tenant_default": profile_request(world.tenants[0].token, "GET", TASKS_URL),
        }
        for label, profile in profiles.items():
            if profile.status != 200:
                raise BenchError(f"in-process list ({label}) answered {profile.status}")
            log_profile(f"GET list {label}", profile, show_sql=args.show_queries and label == "admin_limit200")
            log_plan(f"GET list {label}", profile)
        queries_10, queries_200 = profiles["admin_limit10"].queries, profiles["admin_limit200"].queries

        list_p95 = ms(percentile(lists.tenant, 95))
        create_p95 = ms(percentile(create_samples, 95))
        emit("api_list_tasks_p95_ms", list_p95)
        emit("api_list_tasks_p50_ms", ms(statistics.median(lists.tenant)))
        emit("api_list_tasks_admin_p95_ms", ms(percentile(lists.admin_50, 95)))
        emit("api_list_tasks_admin_limit200_p95_ms", ms(percentile(lists.admin_200, 95)))
        emit("api_create_task_p95_ms", create_p95)
        emit("api_create_task_p50_ms", ms(statistics.median(create_samples)))
        emit("api_create_task_queries", create_profile.queries)
        emit("api_list_tasks_queries", queries_200)
        emit("api_list_tasks_queries_limit10", queries_10)
        emit("api_list_tasks_queries_tenant", profiles["tenant_default"].queries)
        if queries_10 != queries_200:
            emit("api_list_tasks_queries_constant", 0)
            log(f"the list's query count is NOT constant: {queries_10} at limit=10, {queries_200} at limit=200")
        emit("bench_tasks_total", total_tasks)
        emit("bench_tenants", Tenant.objects.count())

        missed = []
        if list_p95 >= TARGET_LIST_P95_MS:
            missed.append(f"list p95 {list_p95} ms >= {TARGET_LIST_P95_MS} ms")
        if create_p95 >= TARGET_CREATE_P95_MS:
            missed.append(f"create p95 {create_p95} ms >= {TARGET_CREATE_P95_MS} ms")
        if queries_10 != queries_200 or queries_200 > TARGET_MAX_QUERIES:
            missed.append(f"list queries {queries_10}/{queries_200} (limit 10/200), target constant <= 8")
        log("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
        return 2 if missed and args.check else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-queries", action="store_true", help="log the SQL of a create and a list (stderr)")
    parser.add_argument("--check", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "python -m benchmarks.api",
        __doc__,
        add_arguments,
        run,
        argv,
        keep_db_help="leave the _bench database for inspection",
    )


if __name__ == "__main__":
    sys.exit(main())
