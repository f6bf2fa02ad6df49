"""A task's engine command line, one renderer for both backends.

High-performance mode runs ``vllm serve``, normal mode our PyTorch engine (``python -m serving.engine``). The
flags come from the task alone, so a task renders the same engine on a cluster and on this machine; what differs
is only where the engine runs (``EngineHost``): the model's path, the port, and how vLLM and Python are started
(``vllm`` on the runtime image's PATH, or ``.venv-vllm``'s interpreter with ``serving.vllm_cpu`` here).

From the task:

* ``--served-model-name``: the name callers use (the adapter maps it either way);
* ``--override-generation-config``: the task's sampling defaults as vLLM's generation config (the adapter also
  applies them, and locks them when the task's sampling policy says so);
* ``--max-num-seqs 1`` (vLLM) / ``--batching off`` (ours) when asynchronous batch inference is off;
* ``--max-model-len``: the model's context length, where its config states one;
* on CPU pools (no device plugin), ``--kv-cache-memory-bytes`` from the task's compute: vLLM's CPU backend
  would otherwise reserve ``--gpu-memory-utilization`` (0.92) of the machine's memory and refuse to start on a
  machine it shares; and ``--enforce-eager``, which halves its start-up (no graph compilation) on a CPU;
* on GPU pools, ``--tensor-parallel-size``: the task's cards per instance.

From the platform: our engine's ``--max-request-bytes``, the adapter's limit (``AICP_MAX_REQUEST_BYTES``), so that
a body the adapter lets through is one the engine reads. vLLM's server sets no body limit of its own.

``tests/inference_jobs/test_engine_command.py`` parses every rendered command with the engine's own argument
parser (vLLM's and ours), for every task option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

from compute_pools.choices import Mode, Vendor
from inference_jobs.orchestrator.spec import TaskSpec

# On a CPU pool the KV cache gets this share of the memory of the task's compute units (cores × the pool's
# memory per core); the rest holds the weights, activations and the runtime itself.
CPU_KV_CACHE_SHARE = 1 / 8
GIB = 1 << 30


@dataclass(frozen=True)
class EngineHost:
    """Where one instance's engine runs and how its programs are started."""

    model: str  # the model's folder as the engine sees it
    port: int
    vllm: tuple[str, ...] = ("vllm",)  # the argv that starts vLLM's CLI
    python: str = "python"  # the interpreter that runs ``serving.engine``
    host: str = "127.0.0.1"
    threads: int | None = None  # our engine's --threads; None leaves its default (serving/engine/__main__.py)
    cpu_only: bool = False  # this host has no accelerator (the local orchestrator): every task runs on its CPU


def on_cpu(spec: TaskSpec, host: EngineHost) -> bool:
    return host.cpu_only or spec.vendor == Vendor.NONE or not spec.resource_name


def generation_config(spec: TaskSpec) -> str:
    values = {"temperature": spec.temperature, "top_p": spec.top_p, "repetition_penalty": spec.repetition_penalty}
    return json.dumps(values, separators=(",", ":"), sort_keys=True)


def cpu_kv_cache_bytes(spec: TaskSpec) -> int:
    return int(spec.compute_units_per_instance * spec.memory_per_unit_gib * GIB * CPU_KV_CACHE_SHARE)


def vllm_command(spec: TaskSpec, host: EngineHost) -> list[str]:
    command = [*host.vllm, "serve", host.model, "--host", host.host, "--port", str(host.port)]
    command += ["--served-model-name", spec.served_model_name]
    command += ["--override-generation-config", generation_config(spec)]
    if spec.context_length:
        command += ["--max-model-len", str(spec.context_length)]
    if not spec.async_batching:
        command += ["--max-num-seqs", "1"]
    if on_cpu(spec, host):
        command += ["--kv-cache-memory-bytes", str(cpu_kv_cache_bytes(spec)), "--enforce-eager"]
    else:
        command += ["--tensor-parallel-size", str(spec.compute_units_per_instance)]
    return command


def pytorch_command(spec: TaskSpec, host: EngineHost) -> list[str]:
    command = [host.python, "-m", "serving.engine", "--model", host.model, "--host", host.host]
    command += ["--port", str(host.port), "--served-model-name", spec.served_model_name]
    command += ["--device", "cpu" if on_cpu(spec, host) else "cuda"]
    command += ["--batching", "on" if spec.async_batching else "off"]
    command += ["--max-request-bytes", str(settings.AICP_MAX_REQUEST_BYTES)]
    if host.threads is not None:
        command += ["--threads", str(host.threads)]
    return command


def engine_command(spec: TaskSpec, host: EngineHost) -> list[str]:
    if spec.mode == Mode.HIGH_PERFORMANCE:
        return vllm_command(spec, host)
    return pytorch_command(spec, host)
