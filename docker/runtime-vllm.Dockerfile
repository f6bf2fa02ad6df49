# The high-performance runtime image: vLLM's own OpenAI server image with our serving adapter added, one image
# for both containers of a task's pod: `vllm serve ...` in the engine container, `python -m serving.adapter ...`
# in the adapter container. The pod sets each container's command (inference_jobs/orchestrator/kubernetes/
# render.py), so the base's ENTRYPOINT (`vllm serve`) is reset. Build from the repository root (docs/images.md):
#
#   docker build -f docker/runtime-vllm.Dockerfile -t registry.example.com/aicp/runtime-vllm:0.1.0 .
#
# vLLM v0.31.0 runs on torch 2.13.0 built for CUDA 13.0 (NVIDIA driver 580 or newer); vLLM also publishes CUDA
# 12.9 builds of its releases for older drivers (tags suffixed -cu129). Only the adapter is added: the serving
# package (which never imports Django) and the serving extra's three dependencies, which vLLM's environment already
# carries. The install is constrained to the vllm and torch versions in place, so it may add a missing package but
# never moves vLLM's own stack.
FROM vllm/vllm-openai:v0.31.0

ARG AICP_VERSION=0.1.0
ARG AICP_REVISION=unknown
ARG AICP_SOURCE=unknown
# The vLLM release of the base; the build stops if the base carries another.
ARG VLLM_VERSION=0.31.0

# Models come from the mounted folder only: never a download, and no usage report, at run time. The caches vLLM,
# Triton, FlashInfer and torch.compile write go under HOME, which the runtime user owns.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/aicp \
    HOME=/home/aicp \
    HF_HOME=/tmp/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1

# Check the base's vLLM release, add the adapter's dependencies to vLLM's environment (nothing to do while vLLM
# ships them), and make sure `python`, which the adapter container's command calls, is vLLM's interpreter: linked
# to python3 when the base has no `python`.
RUN python3 -c "from importlib.metadata import version; v = version('vllm'); \
assert v.split('+')[0] == '${VLLM_VERSION}', f'the base has vllm {v}, this file expects ${VLLM_VERSION}'" \
    && python3 -c "from importlib.metadata import version as v; print(f\"vllm=={v('vllm')}\ntorch=={v('torch')}\")" \
        > /tmp/vllm-constraints.txt \
    && PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --no-cache-dir \
        --disable-pip-version-check --constraint /tmp/vllm-constraints.txt \
        "aiohttp>=3.10,<4" \
        "prometheus-client>=0.21" \
        "uvloop>=0.21" \
    && rm /tmp/vllm-constraints.txt \
    && if ! command -v python >/dev/null 2>&1; then ln -s "$(command -v python3)" /usr/local/bin/python; fi

# uid/gid 10001, numeric below so that Kubernetes' runAsNonRoot can check it (the base runs as root). The home
# folder is group 0 too, for clusters that run pods under an arbitrary uid in group 0.
RUN groupadd --gid 10001 aicp \
    && useradd --uid 10001 --gid aicp --create-home --home-dir /home/aicp --shell /usr/sbin/nologin aicp \
    && chgrp 0 /home/aicp \
    && chmod 0770 /home/aicp

COPY serving/ /opt/aicp/serving/
RUN python -m compileall -q /opt/aicp/serving/adapter

USER 10001:10001
WORKDIR /home/aicp
# The adapter imports as the user that runs it, on the interpreter vLLM runs on; the vllm command is on PATH.
RUN python -c "import importlib.metadata, uvloop, serving.adapter.proxy; importlib.metadata.version('vllm')" \
    && command -v vllm

EXPOSE 8000 8080
ENTRYPOINT []
CMD ["python", "-m", "serving.adapter", "--help"]

LABEL org.opencontainers.image.title="aicp-runtime-vllm" \
      org.opencontainers.image.description="AICP high-performance runtime: vLLM and the serving adapter" \
      org.opencontainers.image.version="${AICP_VERSION}" \
      org.opencontainers.image.revision="${AICP_REVISION}" \
      org.opencontainers.image.source="${AICP_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="vllm/vllm-openai:v0.31.0" \
      io.aicp.runtime.mode="high_performance" \
      io.aicp.runtime.engine="vllm" \
      io.aicp.runtime.vendor="nvidia"
