# The AICP control plane: the web server (gunicorn), the Celery worker and Celery beat all run from this image;
# the Helm chart picks the command. Build from the repository root (docs/images.md):
#
#   docker build -f docker/controlplane.Dockerfile -t registry.example.com/aicp/control-plane:0.1.0 .
#
# It holds no PyTorch: no control-plane module imports torch or transformers (tests/test_packaging.py checks),
# and only the embedded default trains its demo model with them, which a production install does not run.

# ---- builder: the dependencies, in a virtual environment the final stage copies whole ------------------------
FROM python:3.11.17-slim-bookworm AS builder

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Exactly the versions the test suite runs against: requirements/image.txt, which `make lock` compiles from
# aicp[production] (gunicorn on top of pyproject.toml's dependencies) under the constraint of the development lock.
# It is the whole closure, so --no-deps installs it as it is; pip check proves that. psycopg[binary], argon2-cffi
# and the others come as wheels: no compiler, no apt-get. The project's own code is not installed here: it runs
# from /app (below), where settings find templates/ and static/ next to the packages (BASE_DIR).
COPY requirements/image.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --no-deps --requirement /tmp/requirements.txt \
    && pip check

# ---- the image --------------------------------------------------------------------------------------------------
FROM python:3.11.17-slim-bookworm

ARG AICP_VERSION=0.1.0
ARG AICP_REVISION=unknown
ARG AICP_SOURCE=unknown

# PYTHONPATH makes /app win over anything installed, for every entry point: gunicorn, celery, manage.py.
# The image cannot run the local orchestrator (no engine, no serving package): Kubernetes is its default.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_DEBUG=false \
    AICP_STATIC_ROOT=/app/staticfiles \
    AICP_VAR_DIR=/tmp/aicp \
    AICP_ORCHESTRATOR=kubernetes

RUN groupadd --system --gid 10001 aicp \
    && useradd --system --uid 10001 --gid aicp --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin aicp

COPY --from=builder /opt/venv /opt/venv

# The code, owned by root and read-only to the app: what settings, the URLconf and Celery load at run time.
WORKDIR /app
COPY manage.py ./
COPY templates/ templates/
COPY static/ static/
COPY core/ core/
COPY web/ web/
COPY controlplane/ controlplane/
COPY tenancy/ tenancy/
COPY compute_pools/ compute_pools/
COPY gateways/ gateways/
COPY catalog/ catalog/
COPY inference_jobs/ inference_jobs/
COPY telemetry/ telemetry/
COPY reflow/ reflow/

# Static files are collected once, here: hashed names and compressed copies (WhiteNoise's manifest storage, on
# with DEBUG off) in /app/staticfiles. No database is needed; the throwaway key and VAR_DIR only let settings
# load, and the bytecode is compiled now since the app may not write it at run time.
RUN DJANGO_SECRET_KEY=collectstatic-at-build-time-only AICP_VAR_DIR=/tmp/aicp-build \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/aicp-build \
    && python -m compileall -q /app

USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "--config", "python:controlplane.gunicorn_conf", "controlplane.wsgi:application"]

LABEL org.opencontainers.image.title="aicp-control-plane" \
      org.opencontainers.image.description="AICP control plane: web console and API (gunicorn), Celery worker and beat" \
      org.opencontainers.image.version="${AICP_VERSION}" \
      org.opencontainers.image.revision="${AICP_REVISION}" \
      org.opencontainers.image.source="${AICP_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="python:3.11.17-slim-bookworm"
