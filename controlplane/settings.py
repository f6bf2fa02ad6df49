"""AICP control-plane settings, read from the environment.

With no environment at all this is the *embedded default*: a SQLite file under ``var/``, no server needed.
Production and the test suite set ``DATABASE_URL`` (PostgreSQL). Every knob is an ``AICP_*`` or a
conventional Django/Celery variable; ``.env`` in the project root is read when present.
"""

import logging
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# Everything the embedded default writes (SQLite file, storage, broker, run folders, demo credentials).
# AICP_VAR_DIR moves it all elsewhere, e.g. a fresh folder per `make demo-check`.
VAR_DIR = Path(env.str("AICP_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="aicp-embedded-default-not-a-secret")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# Origins (scheme included: https://aicp.example.com) trusted for the console's form posts when the Host that
# Django sees is not the one the browser used.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. In production TLS ends at the Ingress, which says so in X-Forwarded-Proto. AICP_SECURE (on whenever DEBUG
# is off) then trusts that header, redirects plain HTTP to HTTPS, marks the cookies secure and sends HSTS.
AICP_SECURE = env.bool("AICP_SECURE", default=not DEBUG)
if AICP_SECURE:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("AICP_HSTS_SECONDS", default=365 * 24 * 3600)  # 0 sends no HSTS header
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("AICP_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("AICP_HSTS_PRELOAD", default=True)
# Answered over plain HTTP even then: the kubelet's probes and Prometheus reach the pod directly, and adapters in
# tenant namespaces post to the control plane's Service (AICP_INGEST_URL). Django matches these against the path
# without its leading "/".
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^api/v1/ingest/"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"  # no console page is framed, by the console or anyone else

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tenancy",
    "compute_pools",
    "gateways",
    "catalog",
    "inference_jobs",
    "telemetry",
    "reflow",
    "controlplane.console",
]

MIDDLEWARE = [
    "controlplane.request_id.RequestIdMiddleware",  # first: every response, and every log line of it, has its id
    "controlplane.metrics.RequestMetricsMiddleware",  # so that redirects and static files are counted too
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files, answered before sessions and authentication
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "controlplane.api.guard.InputGuardMiddleware",  # path and query values no column can hold: 400 (guard.py)
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.console.context_processors.console",
            ],
        },
    },
]

# The embedded default is a SQLite file. IMMEDIATE transactions make every atomic block take SQLite's
# write lock up front, so the counting rules (500 tasks, 16 ports, quotas) serialise there too.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'aicp.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "tenancy.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("AICP_STATIC_ROOT", default=str(VAR_DIR / "static")))  # filled by `collectstatic`
STATICFILES_DIRS = [BASE_DIR / "static"]  # the console's stylesheet and script, and vendored htmx (no CDN)
# With DEBUG off (production) WhiteNoise serves STATIC_ROOT, which `collectstatic` fills when the image is built:
# content-hashed names (cached for good by browsers) and compressed copies. With DEBUG on files are served where
# they lie and nothing needs collecting.
# Pinned to DEBUG as configured: pytest-django turns DEBUG off while tests run, and the suite collects nothing.
WHITENOISE_AUTOREFRESH = WHITENOISE_USE_FINDERS = DEBUG
if not DEBUG:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:dashboard"
LOGOUT_REDIRECT_URL = "console:login"

# Storage: where uploaded models (and later captured reflow data) live. A local folder in the embedded
# default; a mounted volume in production.
AICP_STORAGE_ROOT = Path(env.str("AICP_STORAGE_ROOT", default=str(VAR_DIR / "storage")))
AICP_MODEL_UPLOAD_MAX_BYTES = env.int("AICP_MODEL_UPLOAD_MAX_BYTES", default=200 * 1024**3)
# Uploaded files stream to temporary files from the first byte; nothing of a model is held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = env.str("AICP_UPLOAD_TEMP_DIR", default=None)
FILE_UPLOAD_HANDLERS = ["catalog.uploads.HashingSizeLimitedUploadHandler"]

# Kubernetes resource names of the vendor device plugins; seeded into the accelerator types and editable there.
AICP_NVIDIA_RESOURCE_NAME = env.str("AICP_NVIDIA_RESOURCE_NAME", default="nvidia.com/gpu")
AICP_ILUVATAR_RESOURCE_NAME = env.str("AICP_ILUVATAR_RESOURCE_NAME", default="iluvatar.ai/gpu")

# Orchestrator (inference_jobs/orchestrator/): "local" (the embedded default: engine and adapter processes on this
# machine, docs/local.md), "kubernetes", or "none" (tasks are admitted and stored, nothing is deployed). The
# Kubernetes API server: AICP_KUBE_API_URL (a plain URL: kubectl proxy, the test emulator), else AICP_KUBECONFIG
# (a kubeconfig file), else the in-cluster service account.
AICP_ORCHESTRATOR = env.str("AICP_ORCHESTRATOR", default="local")
_LOCAL_ORCHESTRATOR = AICP_ORCHESTRATOR == "local"
# The local backend: one run folder per task (config, state, logs); torch threads per engine process (0: the
# engine's own default, chosen from the cores it may use); the interpreter of the vLLM runtime that runs
# high-performance tasks (`make install-vllm` builds .venv-vllm; without it they are refused at admission).
AICP_LOCAL_RUN_DIR = Path(env.str("AICP_LOCAL_RUN_DIR", default=str(VAR_DIR / "run" / "local")))
AICP_LOCAL_ENGINE_THREADS = env.int("AICP_LOCAL_ENGINE_THREADS", default=0)
AICP_LOCAL_VLLM_PYTHON = Path(env.str("AICP_LOCAL_VLLM_PYTHON", default=str(BASE_DIR / ".venv-vllm/bin/python")))
AICP_KUBE_API_URL = env.str("AICP_KUBE_API_URL", default="")
AICP_KUBECONFIG = env.str("AICP_KUBECONFIG", default="")
AICP_KUBE_TIMEOUT_S = env.float("AICP_KUBE_TIMEOUT_S", default=10.0)
# Labels every object with aicp.io/installation=<this>: several installations can share a cluster.
AICP_INSTALLATION = env.str("AICP_INSTALLATION", default="aicp")
AICP_KUBE_NAMESPACE_PREFIX = env.str("AICP_KUBE_NAMESPACE_PREFIX", default="aicp")  # tenant namespaces: <prefix>-<slug>
AICP_KUBE_GATEWAY_NAMESPACE = env.str("AICP_KUBE_GATEWAY_NAMESPACE", default="aicp-gateways")
AICP_KUBE_GATEWAY_CLASS = env.str("AICP_KUBE_GATEWAY_CLASS", default="aicp")
AICP_KUBE_MODEL_PVC = env.str("AICP_KUBE_MODEL_PVC", default="aicp-models")  # the storage root, mounted read-only
# Where adapters ship metric and reflow records (the control plane's ingest API, as pods or local processes reach it).
AICP_INGEST_URL = env.str(
    "AICP_INGEST_URL",
    default="http://127.0.0.1:8000/api/v1/ingest/"
    if _LOCAL_ORCHESTRATOR
    else "http://aicp.aicp-system.svc/api/v1/ingest/",
)
# Adapters name the control plane by that URL's host (the Service's name in a cluster): it is an allowed host too.
_INGEST_HOST = urlsplit(AICP_INGEST_URL).hostname
_INGEST_HOST = f"[{_INGEST_HOST}]" if _INGEST_HOST and ":" in _INGEST_HOST else _INGEST_HOST  # an IPv6 address
if _INGEST_HOST and "*" not in ALLOWED_HOSTS and _INGEST_HOST not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(_INGEST_HOST)
AICP_INGEST_MAX_BODY_BYTES = env.int("AICP_INGEST_MAX_BODY_BYTES", default=32 * 1024**2)  # one batch's body
# The largest request body a task's adapter and our engine read (413 above it). 16 MiB holds a 128k-token prompt
# (0.5-2 MiB of JSON) with room for escapes and list-of-parts content; a reflow record of it fits one ingest batch.
AICP_MAX_REQUEST_BYTES = env.int("AICP_MAX_REQUEST_BYTES", default=16 * 1024**2)

# Telemetry (telemetry/): raw request rows answer exact percentiles for recent windows and per-minute token
# use; hourly and daily roll-ups answer everything else. Retention is enforced by the periodic purge.
AICP_METRICS_RAW_RETENTION_DAYS = env.int("AICP_METRICS_RAW_RETENTION_DAYS", default=7)
AICP_METRICS_ROLLUP_RETENTION_DAYS = env.int("AICP_METRICS_ROLLUP_RETENTION_DAYS", default=400)
AICP_LATENCY_EXACT_MAX_REQUESTS = env.int("AICP_LATENCY_EXACT_MAX_REQUESTS", default=20_000)

# Personal API tokens and tenant API keys record their last use at most this often (seconds), so that an
# authenticated request is not also a write on every call.
AICP_TOKEN_LAST_USED_RESOLUTION_S = env.int("AICP_TOKEN_LAST_USED_RESOLUTION_S", default=60)

# Celery (controlplane/celery.py; `make worker`, `make beat`). The embedded default broker is kombu's filesystem
# transport under var/celery/, no server needed; production and CI set CELERY_BROKER_URL=redis://127.0.0.1:6379/0
# (or amqp://... for RabbitMQ). Reconciles are idempotent, so a task is acknowledged only once it has run and a
# worker that dies mid-task leaves it to be run again.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")  # a host: kombu warns without
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Producers write to data_folder_out and the worker reads data_folder_in: one folder on one machine.
    # processed_folder is used only with "store_processed": True (kept off: it would grow without bound).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(VAR_DIR / "celery" / "messages"),
        "data_folder_out": str(VAR_DIR / "celery" / "messages"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),  # else kombu writes ./control/ in the working folder
    }
    for _folder in ("messages", "processed", "control"):
        (VAR_DIR / "celery" / _folder).mkdir(parents=True, exist_ok=True)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)  # results are not needed
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# Periodic work (`make beat`). A run that waits longer than its interval expires, so missed runs do not pile up.
# The local backend's sweep is also what restarts a dead engine (like a kubelet), so it runs often; it is cheap.
AICP_RECONCILE_SWEEP_S = env.int("AICP_RECONCILE_SWEEP_S", default=5 if _LOCAL_ORCHESTRATOR else 60)
AICP_NODE_INVENTORY_S = env.int("AICP_NODE_INVENTORY_S", default=300)
AICP_RETENTION_PURGE_S = env.int("AICP_RETENTION_PURGE_S", default=3600)
CELERY_BEAT_SCHEDULE = {
    "retention-purge": {
        "task": "telemetry.tasks.retention_purge",
        "schedule": AICP_RETENTION_PURGE_S,
        "options": {"expires": AICP_RETENTION_PURGE_S},
    },
    "reconcile-sweep": {
        "task": "inference_jobs.tasks.reconcile_sweep",
        "schedule": AICP_RECONCILE_SWEEP_S,
        "options": {"expires": AICP_RECONCILE_SWEEP_S},
    },
    "node-inventory": {
        "task": "compute_pools.tasks.node_inventory",
        "schedule": AICP_NODE_INVENTORY_S,
        "options": {"expires": AICP_NODE_INVENTORY_S},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenancy.authentication.APITokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    # The stock parsers, each refusing a body value no column can hold (parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "web.parsers.JSONParser",
        "web.parsers.FormParser",
        "web.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "controlplane.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "controlplane.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # No `?format=` renderer switch: `format` is a filter of its own (a model's format), and the answer's media
    # type is chosen by the Accept header alone.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AICP API",
    "DESCRIPTION": "Control plane of the AICP multi-tenant LLM serving platform.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"TaskStatusEnum": "inference_jobs.choices.TaskStatus"},
}

# /metrics (controlplane/metrics.py). When AICP_METRICS_TOKEN is set, scrapes must send "Authorization: Bearer
# <token>"; unset, the page is open. The chart's Ingress reaches every path of the web pods, /metrics included: set
# a token in production or keep the path off the Ingress. With several gunicorn workers, PROMETHEUS_MULTIPROC_DIR
# (read by prometheus_client itself) names an empty folder where each worker writes its counts.
AICP_METRICS_TOKEN = env.str("AICP_METRICS_TOKEN", default="")

# Logs go to stderr, as text (the default) or, with AICP_LOG_FORMAT=json, one JSON object a line for a log
# collector (controlplane/logging.py).
AICP_LOG_FORMAT = env.str("AICP_LOG_FORMAT", default="text")
if AICP_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"AICP_LOG_FORMAT must be 'text' or 'json', not {AICP_LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "controlplane.logging.JsonFormatter"},
        "text": {"()": "controlplane.logging.TextFormatter"},
    },
    "filters": {"request_id": {"()": "controlplane.logging.RequestIdFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": AICP_LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env.str("AICP_LOG_LEVEL", default="INFO")},
}
if AICP_LOG_FORMAT == "json":
    logging.captureWarnings(True)  # Python's warnings too, as records of the "py.warnings" logger
# A Celery worker replaces the root logger's handlers with its own text format unless told not to.
CELERY_WORKER_HIJACK_ROOT_LOGGER = AICP_LOG_FORMAT != "json"
