"""gunicorn's settings for the control plane's web pods:

    gunicorn --config python:controlplane.gunicorn_conf controlplane.wsgi:application

Threaded workers (``gthread``): the playground relays a model's answer as server-sent events through a plain
Django view, and a model upload streams for minutes; in a thread each ties up one thread, not a whole worker.
Every thread keeps its own database connection, so a pod holds up to ``workers × threads`` of them.

Environment: ``AICP_WEB_PORT`` (8000), ``AICP_WEB_WORKERS`` (2), ``AICP_WEB_THREADS`` (8), ``AICP_WEB_TIMEOUT_S``
(300), ``AICP_WEB_ACCESS_LOG`` (off: Django and the Ingress log requests), ``AICP_LOG_FORMAT`` (json makes
gunicorn's own lines JSON too), ``PROMETHEUS_MULTIPROC_DIR`` (the workers' shared metrics folder; see
``controlplane/metrics.py``).
"""

import os
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if not value else value.strip().lower() in ("1", "true", "yes", "on")


wsgi_app = "controlplane.wsgi:application"
bind = f"0.0.0.0:{_env_int('AICP_WEB_PORT', 8000)}"
worker_class = "gthread"
workers = _env_int("AICP_WEB_WORKERS", 2)
threads = _env_int("AICP_WEB_THREADS", 8)
# A worker whose heartbeat stops this long is restarted. A gthread worker's main loop beats while its threads
# serve, so this is not a limit on one request, but generous all the same for uploads and long streams.
timeout = _env_int("AICP_WEB_TIMEOUT_S", 300)
graceful_timeout = 30  # a rollout lets running requests finish this long (Kubernetes' default grace period: 30 s)
keepalive = 65  # longer than the Ingress keeps an idle upstream connection (nginx: 60 s), so it closes first
# Behind the cluster's Ingress: trust its X-Forwarded-* headers whatever its pod address.
forwarded_allow_ips = "*"
accesslog = "-" if _env_bool("AICP_WEB_ACCESS_LOG", False) else None
errorlog = "-"
# The heartbeat file on memory, not on the container's overlay filesystem, where an fchmod can stall a worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn ≥ 25's runtime control socket: not used, and it would write under $HOME (read-only in a hardened pod).
control_socket_disable = True

if os.environ.get("AICP_LOG_FORMAT") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "controlplane.logging.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},  # replaces gunicorn's, which names its own handler
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
    }


def _prometheus_multiproc_dir() -> Path | None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(folder) if folder else None


def on_starting(server):
    """Counts left by an earlier run (a restarted container keeps its emptyDir) would be added to this one's."""
    folder = _prometheus_multiproc_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    """A dead worker's live gauges go; its counters stay in the folder, so totals never go backwards."""
    if _prometheus_multiproc_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
