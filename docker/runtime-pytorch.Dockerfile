# The normal-mode runtime image: our PyTorch engine (`python -m serving.engine`) and the adapter in front of it
# (`python -m serving.adapter`), one image for both containers of a task's pod. The pod sets each container's
# command (inference_jobs/orchestrator/kubernetes/render.py); nothing here starts them. Build from the repository
# root (docs/images.md):
#
#   docker build -f docker/runtime-pytorch.Dockerfile -t registry.example.com/aicp/runtime-pytorch:0.1.0 .
#
# The base is PyTorch's own CUDA runtime image with the torch the engine extra pins (pyproject.toml), built for
# CUDA 13.0 (NVIDIA driver 580 or newer on the nodes). Its torch is kept as it is: the install below is
# constrained to that exact version, so pip can never swap in a CPU build or another CUDA build from PyPI. The
# base's Python is Ubuntu's, marked externally managed (PEP 668); this single-purpose image installs into it on
# purpose (PIP_BREAK_SYSTEM_PACKAGES) rather than into a venv that would have to see the base's torch anyway.
# One stage: there is nothing to build, the serving package is plain Python copied as it is.
FROM pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime

ARG AICP_VERSION=0.1.0
ARG AICP_REVISION=unknown
ARG AICP_SOURCE=unknown
# pyproject.toml's engine extra pins torch; the build stops if the base carries another version.
ARG TORCH_VERSION=2.13.0

# Models come from the mounted folder only: never a download at run time.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/aicp \
    HOME=/home/aicp \
    HF_HOME=/tmp/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# The engine and adapter dependencies besides torch (pyproject.toml's engine and serving extras), at the
# versions the test suite runs against; `python` is what the pod's commands call.
RUN python3 -c "from importlib.metadata import version; v = version('torch'); \
assert v.split('+')[0] == '${TORCH_VERSION}', f'the base has torch {v}, pyproject.toml pins ${TORCH_VERSION}'" \
    && echo "torch==${TORCH_VERSION}" > /tmp/torch-constraint.txt \
    && PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --no-cache-dir \
        --disable-pip-version-check --constraint /tmp/torch-constraint.txt \
        transformers==5.23.0 \
        tokenizers==0.23.3 \
        aiohttp==3.14.5 \
        prometheus-client==0.26.0 \
        uvloop==0.23.0 \
    && rm /tmp/torch-constraint.txt \
    && if ! command -v python >/dev/null 2>&1; then ln -s "$(command -v python3)" /usr/local/bin/python; fi

# uid/gid 10001, numeric below so that Kubernetes' runAsNonRoot can check it. The home folder takes the caches
# torch and Triton write; it is group 0 too, for clusters that run pods under an arbitrary uid in group 0.
RUN groupadd --gid 10001 aicp \
    && useradd --uid 10001 --gid aicp --create-home --home-dir /home/aicp --shell /usr/sbin/nologin aicp \
    && chgrp 0 /home/aicp \
    && chmod 0770 /home/aicp

COPY serving/ /opt/aicp/serving/
RUN python -m compileall -q /opt/aicp

USER 10001:10001
WORKDIR /home/aicp
# Both entry points import with everything they need, as the user that runs them.
RUN python -c "import transformers, uvloop, serving.engine.kv, serving.engine.server, serving.adapter.proxy"

EXPOSE 8000 8080
ENTRYPOINT []
CMD ["python", "-m", "serving.engine", "--help"]

LABEL org.opencontainers.image.title="aicp-runtime-pytorch" \
      org.opencontainers.image.description="AICP normal-mode runtime: the PyTorch engine and the serving adapter" \
      org.opencontainers.image.version="${AICP_VERSION}" \
      org.opencontainers.image.revision="${AICP_REVISION}" \
      org.opencontainers.image.source="${AICP_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime" \
      io.aicp.runtime.mode="normal" \
      io.aicp.runtime.engine="pytorch" \
      io.aicp.runtime.vendor="nvidia"
