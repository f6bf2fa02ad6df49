"""``make fuzz-api``: schemathesis drives every operation of the REST API, from the API's own OpenAPI schema, as a
tenant admin and as a platform admin, against a live server on PostgreSQL.

1. A dedicated database ``<DATABASE_URL's database>_fuzz`` is created, migrated and seeded (``world.py``).
2. gunicorn serves the app on it (DEBUG off, as in production), writing an access log.
3. One schemathesis process per role, both at once, runs its examples, coverage and fuzzing phases over every
   operation within a time budget, with the checks below. Now and then a path parameter names a real object
   instead of a random one (``identifiers`` of the world), so that detail answers are checked as well as 404s.
   Each process sends ``X-AICP-Fuzz-Role``, so the access log tells the roles' requests apart.
4. It prints ``name=value`` lines: requests made and seconds taken per role, server errors seen in the access
   log, the failures schemathesis found per check. It exits 1 when any operation was left untested, when a
   check failed, when the server answered a 5xx, or when the fuzz's own sign-in stopped working.

The database is dropped at the end (``--keep-db`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.api import BenchError, bench_main, bench_run

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("tenant_admin", "platform_admin")
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
)
PHASES = "examples,coverage,fuzzing"
DEFAULT_MAX_TIME_S = 200  # per role; the roles run at once
ROLE_HEADER = "X-AICP-Fuzz-Role"
IDENTIFIER_PROBABILITY = 0.3  # how often a path parameter names a real object


def log(message: str) -> None:
    print(f"[fuzz-api] {message}", file=sys.stderr, flush=True)


def emit(name: str, value) -> None:
    print(f"{name}={value}", flush=True)


def config_toml(identifiers: dict[str, list]) -> str:
    """schemathesis.toml: per resource, a dictionary of real identifiers bound to its path parameter."""
    lines = []
    for resource, values in sorted(identifiers.items()):
        if values:
            lines += [f"[dictionaries.{_key(resource)}]", f"values = {json.dumps(values)}", ""]
    for resource, values in sorted(identifiers.items()):
        if not values:
            continue
        lookup = "id" if isinstance(values[0], int) or resource == "reflow-records" else "slug"
        lines += [
            "[[operations]]",
            f'include-path-regex = "^/api/v1/{resource}/[{{]"',
            f'parameters = {{ "path.{lookup}" = {{ dictionary = "{_key(resource)}", probability = '
            f"{IDENTIFIER_PROBABILITY} }} }}",
            "",
        ]
    return "\n".join(lines)


def _key(resource: str) -> str:
    return resource.replace("-", "_")


def start_schemathesis(*, schema: Path, base_url: str, token: str, role: str, workdir: Path, args):
    """One role's run, started; ``finish_schemathesis`` waits for it."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(workdir / "schemathesis.toml"),
        "run",
        str(schema),
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--header",
        f"{ROLE_HEADER}: {role}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-time",
        str(args.max_time),
        "--workers",
        str(args.workers),
        "--seed",
        str(args.seed),
        "--report",
        "json",
        "--report-json-path",
        str(workdir / f"{role}.json"),
        "--continue-on-failure",
        "--warnings",
        "off",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)}
    output = (workdir / f"{role}.log").open("w")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    return process, output, time.perf_counter()


def finish_schemathesis(started, *, role: str, workdir: Path) -> dict:
    """Wait for a role's run; what its JSON report says, with its exit status, duration and output."""
    process, output, began = started
    process.wait()
    elapsed = time.perf_counter() - began
    output.close()
    text = (workdir / f"{role}.log").read_text()
    report = workdir / f"{role}.json"
    if not report.exists():
        raise BenchError(f"schemathesis ({role}) wrote no report (exit {process.returncode}):\n{text[-4000:]}")
    return {"elapsed_s": elapsed, "exit": process.returncode, "output": text, "report": json.loads(report.read_text())}


# gunicorn's access log: "<status> <method> <role> <path>". A path may hold newlines.
ACCESS_LOG_FORMAT = f"%(s)s %(m)s %({{{ROLE_HEADER.lower()}}}i)s %(U)s"
ACCESS_LINE = re.compile(r"^([1-5]\d\d) [A-Z]+ (\S+) /")


def access_log_counts(path: Path, role: str) -> tuple[int, Counter, list[str]]:
    """The requests of ``role`` the server answered: how many, by status, and those answered with a 5xx."""
    lines = path.read_text().splitlines() if path.exists() else []
    answered = [match for line in lines if (match := ACCESS_LINE.match(line)) and match.group(2) == role]
    statuses = Counter(match.group(1) for match in answered)
    errors = [match.string for match in answered if match.group(1).startswith("5")]
    return len(answered), statuses, errors


def run(args: argparse.Namespace) -> int:
    import requests

    from tests.fuzz.world import seed

    roles = args.roles or ROLES
    with (
        tempfile.TemporaryDirectory(prefix="aicp-fuzz-") as tmp,
        bench_run("fuzz", keep_db=args.keep_db, log=log) as bench,
    ):
        workdir = Path(args.output or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        world = seed()
        from django.db import connections

        connections.close_all()
        os.environ["AICP_FUZZ_PROTECTED"] = json.dumps(world.protected)
        (workdir / "schemathesis.toml").write_text(config_toml(world.identifiers))
        access_log = workdir / "access.log"
        server = bench.serve(workers=2, access_log=(access_log, ACCESS_LOG_FORMAT))
        tokens = {"tenant_admin": world.tenant_admin_token, "platform_admin": world.platform_admin_token}
        with requests.Session() as session:
            server.wait_ready(session)
            schema = session.get(
                f"{server.base_url}/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}, timeout=30
            )
            schema.raise_for_status()
        schema_path = workdir / "openapi.json"
        schema_path.write_text(schema.text)
        operations = sum(
            1
            for item in schema.json()["paths"].values()
            for method in item
            if method in ("get", "post", "patch", "delete")
        )
        emit("fuzz_operations", operations)

        started = {
            role: start_schemathesis(
                schema=schema_path, base_url=server.base_url, token=tokens[role], role=role, workdir=workdir, args=args
            )
            for role in roles
        }
        log(f"{', '.join(roles)}: schemathesis for up to {args.max_time}s each on {operations} operations, at once")
        outcomes = {role: finish_schemathesis(started[role], role=role, workdir=workdir) for role in roles}
        failed = []
        for role, outcome in outcomes.items():
            requests_made, statuses, server_errors = access_log_counts(access_log, role)
            summary = summarise(outcome["report"])
            emit(f"fuzz_{role}_requests", requests_made)
            emit(f"fuzz_{role}_seconds", round(outcome["elapsed_s"], 1))
            emit(f"fuzz_{role}_operations_tested", summary["tested"])
            emit(f"fuzz_{role}_server_errors", len(server_errors))
            emit(f"fuzz_{role}_cases", summary["cases"])
            emit(f"fuzz_{role}_failures", sum(summary["failures"].values()))
            emit(f"fuzz_{role}_runtime_errors", summary["errors"])
            for title, count in sorted(summary["failures"].items()):
                log(f"{role}: {count} x {title}")
            log(f"{role}: statuses {dict(sorted(statuses.items()))}")
            still_signed_in = requests.get(
                f"{server.base_url}/api/v1/users/me/", headers={"Authorization": f"Bearer {tokens[role]}"}, timeout=30
            ).status_code
            if still_signed_in != 200:
                failed.append(f"{role}: the fuzz's token answers {still_signed_in} after the run")
            if requests_made == 0:
                failed.append(f"{role}: the access log shows none of its requests")
            if summary["tested"] < operations:
                failed.append(f"{role}: {summary['tested']} of {operations} operations tested")
            if server_errors:
                failed.append(f"{role}: {len(server_errors)} server errors, e.g. {server_errors[:5]}")
            if summary["failures"] or summary["errors"] or outcome["exit"] != 0:
                failed.append(f"{role}: schemathesis exit {outcome['exit']}, failures {dict(summary['failures'])}")
                print(outcome["output"][-args.show_output :], file=sys.stderr)
        for line in failed:
            log(f"FAILED {line}")
        return 1 if failed else 0


def summarise(report: dict) -> dict:
    """From schemathesis' JSON report: operations tested, cases generated, unique failures by their title
    (``Server error``, ``Response violates schema``, ``Undocumented status code``...) and runtime errors."""
    failures = Counter()
    for failure in report["failures"]:
        failures[f"{failure['code']} {failure['title']}"] += failure["count"]
    return {
        "tested": report["operations"]["tested"],
        "cases": report["test_cases"]["generated"],
        "failures": failures,
        "failing_operations": sorted({op for failure in report["failures"] for op in failure["operations"]}),
        "errors": len(report["errors"]),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-time", type=int, default=DEFAULT_MAX_TIME_S, help="seconds per role (default 200)")
    # One thread per schemathesis process. Hypothesis parses source code while it generates, and on this machine's
    # CPython 3.11.7 two threads doing so at once failed now and then with "SystemError: AST constructor recursion
    # depth mismatch", an interpreter bug (python/cpython#106905 is one of its kind). The roles' two processes keep
    # the server busy instead.
    parser.add_argument("--workers", type=int, default=1, help="threads per schemathesis process (default 1)")
    parser.add_argument("--seed", type=int, default=20261202, help="schemathesis seed, for a repeatable run")
    parser.add_argument("--roles", nargs="*", choices=ROLES, help="roles to run as (default: both)")
    parser.add_argument("--output", help="folder for the schema, the reports and the logs (default: a temporary one)")
    parser.add_argument("--show-output", type=int, default=20000, help="characters of a failed run's output to show")


def main(argv: list[str] | None = None) -> int:
    return bench_main("python -m tests.fuzz.run", __doc__, add_arguments, run, argv, log=log)


if __name__ == "__main__":
    sys.exit(main())
