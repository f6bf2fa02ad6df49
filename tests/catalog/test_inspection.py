"""Reading a model folder: config.json facts, exact parameter counts from safetensors headers (never the
weights), and the reasons a folder is not a servable model."""

from __future__ import annotations

import json
import re
import struct
import time
from pathlib import Path

import pytest
from safetensors import deserialize

from catalog.inspection import InspectionError, inspect_model_folder, read_safetensors_header
from catalog.paths import UnsafePathError, safe_relative_path
from catalog.sizing import estimate_parameter_count
from tests.catalog.modelfiles import (
    TINY_CONFIG,
    TINY_PARAMETERS,
    TINY_TENSORS,
    safetensors_bytes,
    safetensors_header,
    tiny_model_files,
)
from tests.factories import LLAMA_7B_CONFIG


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for path, content in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    return folder


def test_the_test_helper_writes_real_safetensors():
    tensors = deserialize(safetensors_bytes(TINY_TENSORS))
    assert {name: spec["shape"] for name, spec in tensors} == {name: shape for name, (_, shape) in TINY_TENSORS.items()}


def test_config_facts_and_exact_parameter_count(tmp_path):
    inspection = inspect_model_folder(write_folder(tmp_path, tiny_model_files()))
    assert inspection.parameter_count == TINY_PARAMETERS and inspection.parameter_count_exact
    assert (inspection.architecture, inspection.dtype, inspection.context_length) == (
        "LlamaForCausalLM",
        "bfloat16",
        2048,
    )
    assert inspection.format == "safetensors"
    assert inspection.config == TINY_CONFIG
    assert not inspection.quantized


def test_sharded_checkpoints_sum_every_shard(tmp_path):
    inspection = inspect_model_folder(write_folder(tmp_path, tiny_model_files(sharded=True)))
    assert inspection.parameter_count == TINY_PARAMETERS


@pytest.mark.parametrize("with_index", [True, False])
def test_a_missing_shard_is_named(tmp_path, with_index):
    files = tiny_model_files(sharded=True)
    del files["model-00002-of-00002.safetensors"]
    if not with_index:
        del files["model.safetensors.index.json"]
    with pytest.raises(InspectionError, match=re.escape("model-00002-of-00002.safetensors missing")):
        inspect_model_folder(write_folder(tmp_path, files))


def llama_7b_tensors() -> dict[str, tuple[str, list[int]]]:
    hidden, intermediate, vocab = 4096, 11008, 32000
    tensors = {"model.embed_tokens.weight": ("F16", [vocab, hidden]), "lm_head.weight": ("F16", [vocab, hidden])}
    for layer in range(32):
        prefix = f"model.layers.{layer}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"{prefix}.self_attn.{name}.weight"] = ("F16", [hidden, hidden])
        tensors[f"{prefix}.mlp.gate_proj.weight"] = ("F16", [intermediate, hidden])
        tensors[f"{prefix}.mlp.up_proj.weight"] = ("F16", [intermediate, hidden])
        tensors[f"{prefix}.mlp.down_proj.weight"] = ("F16", [hidden, intermediate])
        tensors[f"{prefix}.input_layernorm.weight"] = ("F16", [hidden])
        tensors[f"{prefix}.post_attention_layernorm.weight"] = ("F16", [hidden])
    tensors["model.norm.weight"] = ("F16", [hidden])
    return tensors


def test_a_13_gb_checkpoint_is_counted_from_its_header_alone(tmp_path):
    """The weights file is sparse: 13 GB long, almost nothing on disk. Reading it would take minutes."""
    header, data_size = safetensors_header(llama_7b_tensors())
    assert data_size == 6_738_415_616 * 2
    with (tmp_path / "model.safetensors").open("wb") as stream:
        stream.write(header)
        stream.truncate(len(header) + data_size)
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B_CONFIG))

    started = time.monotonic()
    inspection = inspect_model_folder(tmp_path)
    assert time.monotonic() - started < 2
    assert inspection.parameter_count == 6_738_415_616 == estimate_parameter_count(LLAMA_7B_CONFIG)
    assert inspection.dtype == "float16"


def test_metadata_is_not_a_tensor(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes({"w": ("F32", [3, 5])}, metadata={"format": "pt", "note": "x"}))
    assert read_safetensors_header(path).parameter_count == 15


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x01\x02", "shorter than its 8-byte header length"),
        (struct.pack("<Q", 10**12) + b"{}", "its header length is 1000000000000 bytes"),
        (struct.pack("<Q", 4) + b"nope", "unreadable safetensors header"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_a_corrupt_safetensors_file_is_named(tmp_path, content, reason):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(InspectionError, match=re.escape(reason)):
        read_safetensors_header(path)


def test_dtype_and_context_fall_back_to_what_the_files_say(tmp_path):
    config = {"architectures": ["ChatGLMModel"], "seq_length": 8192}
    files = {"config.json": json.dumps(config).encode(), "model.safetensors": safetensors_bytes({"w": ("F16", [8])})}
    inspection = inspect_model_folder(write_folder(tmp_path, files))
    assert (inspection.dtype, inspection.context_length) == ("float16", 8192)


def test_pytorch_weights_are_sized_from_the_config(tmp_path):
    files = {"config.json": json.dumps(LLAMA_7B_CONFIG).encode(), "pytorch_model.bin": b"\x00"}
    inspection = inspect_model_folder(write_folder(tmp_path, files))
    assert inspection.format == "pytorch"
    assert inspection.parameter_count == 6_738_415_616 and not inspection.parameter_count_exact
    assert inspection.notes == ["parameter count estimated from config.json"]


def test_a_quantised_model_is_sized_from_its_architecture_not_its_packed_tensors(tmp_path):
    config = {**TINY_CONFIG, "quantization_config": {"quant_method": "awq", "bits": 4}}
    files = {**tiny_model_files(config=config), "model.safetensors": safetensors_bytes({"qweight": ("I32", [8, 64])})}
    inspection = inspect_model_folder(write_folder(tmp_path, files))
    assert inspection.quantized and inspection.dtype == "int4"
    assert inspection.parameter_count == estimate_parameter_count(config) != 8 * 64


def test_training_arguments_are_not_weights(tmp_path):
    files = {"config.json": b"{}", "training_args.bin": b"\x00"}
    with pytest.raises(InspectionError, match=r"no weights \(\*.safetensors or \*.bin\) found"):
        inspect_model_folder(write_folder(tmp_path, files))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("config.json", "config.json"),
        ("./tokenizer//vocab.json", "tokenizer/vocab.json"),
        ("./", None),
        ("model/", "model"),
    ],
)
def test_safe_relative_paths(name, expected):
    assert safe_relative_path(name) == expected


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\b", "a\x00b", "x" * 256, "a/" * 600])
def test_unsafe_relative_paths(name):
    with pytest.raises(UnsafePathError):
        safe_relative_path(name)
