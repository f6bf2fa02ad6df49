"""Every engine command AICP renders is one its engine accepts: ``vllm serve`` lines are parsed by vLLM's own
argument parser (in vLLM's environment, ``vllm_argv.py``), our engine's by ``serving.engine``'s, for both
backends and every task option that changes the command. An unknown, misspelt or ill-typed flag fails here, not
in a pod or a local process minutes later."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
from pathlib import Path

import pytest

from compute_pools.choices import Mode, Vendor
from inference_jobs.orchestrator.engine import CPU_KV_CACHE_SHARE, GIB
from inference_jobs.orchestrator.kubernetes.render import engine_command as kubernetes_command
from inference_jobs.orchestrator.local.backend import LocalBackend, LocalSettings
from serving.engine.__main__ import parse_args as engine_parse_args
from tests.test_packaging import spec_for
from tests.vllm_runtime import PROJECT_ROOT, vllm_environment, vllm_python

VLLM_LAUNCHERS = (("vllm",), ("-m", "serving.vllm_cpu"))


def local_backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(LocalSettings(run_dir=tmp_path / "run", storage_root=tmp_path / "storage", engine_threads=1))


def specs(mode: str):
    """The task options that change the engine's command, in every combination that matters."""
    for vendor, async_batching, context_length, units in itertools.product(
        (Vendor.NVIDIA, Vendor.NONE), (True, False), (None, 512), (1, 2)
    ):
        yield dataclasses.replace(
            spec_for(mode, vendor),
            async_batching=async_batching,
            context_length=context_length,
            compute_units_per_instance=units,
            temperature=0.2 if async_batching else 1.3,
            top_p=0.95,
            repetition_penalty=1.1,
            served_model_name="support-bot",
        )


def rendered(mode: str, tmp_path: Path) -> list[list[str]]:
    """What both backends render for ``mode``: the Kubernetes engine container and the local engine process."""
    local = local_backend(tmp_path)
    commands = []
    for spec in specs(mode):
        commands.append(kubernetes_command(spec))
        commands.append(local.engine_command(spec, 18123))
    return commands


def vllm_arguments(command: list[str]) -> list[str]:
    """The arguments after the program that starts vLLM's CLI (``vllm`` in the image, the launcher here)."""
    index = command.index("serve")
    assert tuple(command[:index]) in VLLM_LAUNCHERS or tuple(command[1:index]) in VLLM_LAUNCHERS, command
    return command[index:]


def vllm_verdicts(argument_lists: list[list[str]]) -> list[dict]:
    answer = subprocess.run(
        [str(vllm_python()), str(Path(__file__).with_name("vllm_argv.py"))],
        input=json.dumps(argument_lists),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**vllm_environment(), "VLLM_TARGET_DEVICE": "cpu"},
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    return json.loads(answer.stdout)


def test_every_rendered_vllm_command_is_accepted_by_vllms_parser(tmp_path):
    commands = rendered(Mode.HIGH_PERFORMANCE, tmp_path)
    arguments = [vllm_arguments(command) for command in commands]
    # A misspelt flag and an ill-typed value, rendered the same way: the parser must refuse both, or this test
    # could not fail.
    broken = [
        [*arguments[0], "--max-num-seq", "1"],  # a prefix of --max-num-seqs
        [arg.replace("--override-generation-config", "--override-generation-configs") for arg in arguments[1]],
        [*arguments[1], "--kv-cache-memory-bytes", "a lot"],
    ]

    verdicts = vllm_verdicts(arguments + broken)

    refused = [(" ".join(a), v["error"]) for a, v in zip(arguments, verdicts, strict=False) if not v["ok"]]
    assert refused == []
    assert [v["ok"] for v in verdicts[len(arguments) :]] == [False, False, False], verdicts[len(arguments) :]


def test_every_rendered_engine_command_is_accepted_by_our_engines_parser(tmp_path):
    for command in rendered(Mode.NORMAL, tmp_path):
        module = command.index("serving.engine")
        assert command[module - 1] == "-m", command
        args = engine_parse_args(command[module + 1 :])
        assert args.served_model_name == "support-bot"
        assert args.batching in ("on", "off")


def test_our_engines_parser_refuses_a_misspelt_or_ill_typed_flag(tmp_path):
    (command, *_) = rendered(Mode.NORMAL, tmp_path)
    arguments = command[command.index("serving.engine") + 1 :]
    for broken in ([*arguments, "--thread", "2"], [*arguments, "--port", "eighty"], [*arguments, "--batching", "1"]):
        with pytest.raises(SystemExit):
            engine_parse_args(broken)


def test_the_vllm_command_carries_the_tasks_options():
    spec = dataclasses.replace(
        spec_for(Mode.HIGH_PERFORMANCE, Vendor.NONE), async_batching=False, context_length=512,
        compute_units_per_instance=2, memory_per_unit_gib=4, temperature=0.3, served_model_name="support-bot",
    )  # fmt: skip
    command = kubernetes_command(spec)

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--served-model-name") == "support-bot"
    assert json.loads(value("--override-generation-config")) == {
        "temperature": 0.3, "top_p": 0.9, "repetition_penalty": 1.0,
    }  # fmt: skip
    assert value("--max-num-seqs") == "1"
    assert value("--max-model-len") == "512"
    assert int(value("--kv-cache-memory-bytes")) == int(2 * 4 * GIB * CPU_KV_CACHE_SHARE)
    assert "--tensor-parallel-size" not in command  # a CPU pool's units are cores, not cards to shard over
    on_gpus = kubernetes_command(dataclasses.replace(spec, vendor=Vendor.NVIDIA, resource_name="nvidia.com/gpu"))
    assert on_gpus[on_gpus.index("--tensor-parallel-size") + 1] == "2"
    assert "--kv-cache-memory-bytes" not in on_gpus
    assert "--max-num-seqs" not in kubernetes_command(dataclasses.replace(spec, async_batching=True))


def test_the_local_backend_renders_the_same_flags_on_its_cpu(tmp_path):
    """Locally every task runs on this machine's CPU, vLLM from its own environment through the launcher; the
    flags are the Kubernetes engine's for a CPU pool."""
    spec = dataclasses.replace(spec_for(Mode.HIGH_PERFORMANCE, Vendor.NONE), context_length=512)
    backend = local_backend(tmp_path)
    local = backend.engine_command(spec, 18123)

    assert local[:3] == [str(backend.local.vllm_python), "-m", "serving.vllm_cpu"]
    cluster = kubernetes_command(spec)
    flags = lambda command: [arg for arg in command[command.index("serve") + 2 :] if arg.startswith("--")]  # noqa: E731
    assert flags(local) == flags(cluster)
    gpu_spec = dataclasses.replace(spec, vendor=Vendor.NVIDIA, resource_name="nvidia.com/gpu")
    assert "--kv-cache-memory-bytes" in backend.engine_command(gpu_spec, 18123)  # still this machine's CPU
